"""One training run, full or LoRA, writing the run folder described in docs/interfaces.md.

`train(cfg, run_dir)` runs in the calling process: the jobs worker calls it, and so does
`python -m engine train` (also under `accelerate launch` for several GPUs, where only
the main process writes files). Status is the caller's business; this module writes the
metrics, the eval set, checkpoints, the final model and the summary, through RunFolder.

Why a hand-written loop rather than Trainer: the loss runs the vocabulary projection,
and the last layer past its attention, on masked positions only (engine.mlm_head,
see engine.mlm_head), evaluation uses a fixed masked eval set,
and stopping/resuming must fit the run folder. accelerate supplies devices, mixed
precision and DDP; transformers the collator, the schedule and the decay rule.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

from engine.data import corpus as data
from engine.mlm_head import masked_lm_loss, static_masked_lm_loss
from engine.models import load_mlm
from engine.run_folder import RunFolder
from engine.training import checkpoints, cpu_speedups, lora
from engine.training.batches import StepBatches, take
from engine.training.compiled import CompiledStep
from engine.training.config import TrainConfig
from engine.training.eval_set import build_eval_set, evaluate, load_eval_set, save_eval_set
from engine.training.log import LogWindow, peak_memory_bytes, train_row
from engine.training.optim import build_optimizer, build_scheduler
from engine.training.pinned import top_guesses

__all__ = ["train", "evaluate", "mixed_precision"]

Log = Callable[[str], None]


class MaskedLMObjective(nn.Module):
    """forward() = the masked-only MLM loss. Wrapping the model in one module whose
    forward computes the loss lets DDP (through accelerate) see every forward pass."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor, capacity: int | None = None) -> torch.Tensor:
        if capacity is not None:  # the compiled step's fixed shapes: engine/training/compiled.py
            return static_masked_lm_loss(self.model, input_ids, labels, capacity)
        loss, _ = masked_lm_loss(self.model, {"input_ids": input_ids, "labels": labels})
        return loss


def mixed_precision(precision: str, on_gpu: bool) -> str:
    """accelerate's mixed_precision value: fp32 on CPU, bf16 (or fp16 on older GPUs) on GPU."""
    if not on_gpu or precision == "fp32":
        return "no"
    if precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return precision


def cpu_only() -> bool:
    """No accelerator device: accelerate then needs cpu=True to run several processes (gloo)."""
    mps = getattr(torch.backends, "mps", None)
    return not torch.cuda.is_available() and not (mps is not None and mps.is_available())


def _accelerator(cfg: TrainConfig, log: Log):
    from accelerate import Accelerator

    on_gpu = torch.cuda.is_available()
    if not on_gpu and cfg.precision in ("fp16", "bf16"):
        log(f"No GPU: training in fp32 instead of {cfg.precision}.")
    if not on_gpu and "OMP_NUM_THREADS" not in os.environ:
        # In a container torch may count the host's cores, not the ones we may use.
        torch.set_num_threads(max(1, min(torch.get_num_threads(), len(os.sched_getaffinity(0)))))
    return Accelerator(mixed_precision=mixed_precision(cfg.precision, on_gpu), cpu=cpu_only())


def _load_model(cfg: TrainConfig, checkpoint: Path | None):
    """(model, tokenizer, info); from the checkpoint's weights when resuming."""
    if cfg.method == "full" and checkpoint is not None:
        loaded = load_mlm(str(RunFolder.checkpoint_model(checkpoint)))
    else:
        loaded = load_mlm(cfg.model)
    model = loaded.model
    if cfg.method == "lora":
        if checkpoint is not None:
            model = lora.load_adapter(model, RunFolder.checkpoint_model(checkpoint), cfg.model)
        else:
            model = lora.wrap_lora(model, cfg, loaded.info.model_type, cfg.model)
    model.train()
    return model, loaded.tokenizer, loaded.info


def _data(cfg: TrainConfig, tokenizer, max_length: int, folder: RunFolder, is_main: bool):
    """Training chunk columns, and the fixed eval set (main process only; reused on resume)."""
    prepared = data.prepare(cfg.corpus, tokenizer, cfg.chunk_size, max_length)
    chunks = prepared.chunks
    words = cfg.whole_word_mask
    train_cols = take(chunks["train"], data.downsample(len(chunks["train"]["input_ids"]), cfg.train_size, cfg.seed),
                      words)
    eval_arrays = None
    if is_main:
        if folder.eval_set_path.exists():
            eval_arrays = load_eval_set(folder.eval_set_path)
        else:
            test = chunks["test"]
            test_cols = take(test, data.downsample(len(test["input_ids"]), cfg.test_size, cfg.seed), words)
            eval_arrays = build_eval_set(test_cols, tokenizer, cfg)
            save_eval_set(folder.path, eval_arrays)
    return train_cols, eval_arrays


def _stop_requested(accelerator, should_stop: Callable[[], bool] | None) -> bool:
    flag = bool(should_stop()) if should_stop is not None and accelerator.is_main_process else False
    if accelerator.num_processes > 1:  # every process must stop at the same step
        flag = bool(accelerator.reduce(torch.tensor(int(flag), device=accelerator.device)).item())
    return flag


def train(
    cfg: TrainConfig,
    run_dir: Path,
    should_stop: Callable[[], bool] | None = None,
    resume: bool = False,
    *,
    progress: Callable[[dict], None] | None = None,
    log: Log | None = None,
) -> dict:
    """Train, evaluate and save into `run_dir`; return the summary (see docs/interfaces.md).

    should_stop is polled after every optimizer step; when it says True the run saves a
    checkpoint and returns {"stopped": True, ...}. resume=True continues from the newest
    checkpoint with the same step count, data order, masks and metrics.
    progress gets {"step", "total_steps", "epoch"} at the start and after each logged step.
    """
    log = log or (lambda line: print(line, flush=True))
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-save "Writing model shards" bars would flood the log
    run = _Run(cfg.validated(), Path(run_dir), should_stop, progress, log)
    return run.execute(resume)


class _Run:
    """The state of one call to train(), split into short steps."""

    def __init__(self, cfg, run_dir, should_stop, progress, log):
        self.cfg, self.run_dir, self.should_stop, self.progress, self.log = cfg, run_dir, should_stop, progress, log
        self.folder = RunFolder(run_dir)
        self.acc = _accelerator(cfg, log)
        self.main = self.acc.is_main_process
        if self.main:
            run_dir.mkdir(parents=True, exist_ok=True)
        else:
            self.log = lambda line: None

    # ------------------------------------------------------------ setup

    def execute(self, resume: bool) -> dict:
        cfg, acc = self.cfg, self.acc
        ckpt = checkpoints.latest_checkpoint(self.run_dir) if resume else None
        state = checkpoints.load_state(ckpt) if ckpt is not None else {}
        torch.manual_seed(cfg.seed + acc.process_index)  # LoRA init and dropout
        model, self.tokenizer, info = _load_model(cfg, ckpt)
        self.speedups = cpu_speedups.install(model, acc.device)  # same results, less work: see the module
        self.model_type = info.model_type
        self.head_trained = info.head_trained  # at the start: the pinned prompts' view says so
        with acc.main_process_first():  # the first process fills the tokenization cache
            train_cols, self.eval_arrays = _data(cfg, self.tokenizer, info.max_length, self.folder, self.main)
        self.batches = StepBatches(train_cols, self.tokenizer, cfg, acc.process_index, acc.num_processes, acc.device)
        self.total = self.batches.total_steps()
        self.trainable, self.total_params = lora.count_params(model)
        optimizer = build_optimizer(model, cfg)
        self.scheduler = build_scheduler(optimizer, cfg, self.total)
        self.objective, self.optimizer = acc.prepare(MaskedLMObjective(model), optimizer)
        self.params = [p for p in self.objective.parameters() if p.requires_grad]
        self.compiled = None
        if cfg.compile != "off":
            self.compiled = CompiledStep(self.objective, cfg.compile, acc.device, self.log)
        self._restore(state, resume)
        self.log(
            f"{cfg.method} fine-tuning of {cfg.model} ({self.model_type}): {self.trainable:,} of "
            f"{self.total_params:,} parameters trainable; {self.batches.n:,} training chunks, "
            f"{self.batches.steps_per_epoch:,} steps per epoch, {self.total:,} steps; "
            f"device {acc.device} x {acc.num_processes} process(es), mixed precision {acc.mixed_precision}"
        )
        return self._loop()

    def _restore(self, state: dict, resume: bool) -> None:
        self.step = int(state.get("step", 0))
        self.epoch = float(state.get("epoch", 0.0))
        self.elapsed_before = float(state.get("elapsed_s", 0.0))
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.samples = int(state.get("samples", 0))
        self.ppl_before = state.get("ppl_before")
        if state:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if self.acc.scaler is not None and "scaler" in state:
                self.acc.scaler.load_state_dict(state["scaler"])
            if self.acc.num_processes == 1:
                checkpoints.restore_rng(state["rng"])
            else:  # per-process dropout streams: reseed deterministically from the step
                torch.manual_seed(self.cfg.seed + self.acc.process_index + self.step)
            self.log(f"Resuming from step {self.step} (epoch {self.epoch:.2f}).")
        if resume and self.main:
            # Rows after the checkpoint will be logged again; a fresh start drops them all.
            self.folder.truncate_metrics_after(self.step if state else -1)
        self.start = time.perf_counter()

    # ------------------------------------------------------------ the loop

    def _elapsed(self) -> float:
        return round(self.elapsed_before + time.perf_counter() - self.start, 3)

    def _loop(self) -> dict:
        cfg = self.cfg
        evaluated = self._evaluated_steps()
        if self.step == 0 and 0 not in evaluated:
            self.ppl_before = self._evaluate()
        self._progress()
        window = LogWindow(self.acc.device)
        while self.step < self.total:
            self._optimizer_step(window)
            step = self.step
            if step % cfg.log_every == 0 or step == self.total:
                self._log_train(window)
            if step == self.total:
                break
            if cfg.eval_every and step % cfg.eval_every == 0:
                self._evaluate()
            saved = bool(cfg.save_every and step % cfg.save_every == 0)
            if saved:
                self._save_checkpoint()
            if _stop_requested(self.acc, self.should_stop):
                if not saved:
                    self._save_checkpoint()
                self.log(f"Stopped at step {step}; resume continues from here.")
                return self._summary(stopped=True, ppl_after=None)
        ppl_after = self._evaluate() if self.total not in self._evaluated_steps() else self._last_ppl()
        self._save_final()
        summary = self._summary(stopped=False, ppl_after=ppl_after)
        if self.main:
            self.folder.write_summary(summary)
        self.log(f"Done: perplexity {self.ppl_before} -> {ppl_after} in {self.total} steps.")
        return summary

    def _optimizer_step(self, window: LogWindow) -> None:
        acc, cfg = self.acc, self.cfg
        began = time.perf_counter()  # masking a new epoch counts as training time
        self.epoch, batches = self.batches.for_step(self.step + 1)
        step_loss = None
        for i, batch in enumerate(batches):
            last = i == len(batches) - 1
            # DDP: synchronise gradients only on the last micro-batch of the step.
            with nullcontext() if last else acc.no_sync(self.objective):
                loss = self._forward_backward(batch, 1 / len(batches), first_micro=i == 0)
            step_loss = loss if step_loss is None else step_loss + loss
        grad_norm = acc.clip_grad_norm_(self.params, cfg.max_grad_norm or math.inf)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        n = sum(len(b["input_ids"]) for b in batches) * acc.num_processes
        self.samples += n
        seconds = time.perf_counter() - began
        self.train_seconds += seconds
        window.add(step_loss / len(batches), grad_norm, n, n * cfg.chunk_size, seconds)

    def _forward_backward(self, batch: dict, scale: float, first_micro: bool) -> torch.Tensor:
        """One micro-batch's loss (detached) after its backward, compiled when asked for."""
        if self.compiled is not None:
            self.compiled.set_max_masked(self.batches.max_masked)
            shape = (self.cfg.batch_size, self.cfg.chunk_size)
            return self.compiled.forward_backward(batch, self.acc.backward, scale, shape, first_micro)
        loss = self.objective(**batch)
        self.acc.backward(loss * scale)
        return loss.detach()

    def _log_train(self, window: LogWindow) -> None:
        row = train_row(
            window, self.step, self.epoch, self.scheduler.get_last_lr()[0], self._elapsed(),
            peak_memory_bytes(self.acc.device),
        )
        if self.acc.num_processes > 1:
            row["loss"] = round(float(self.acc.reduce(torch.tensor(row["loss"], device=self.acc.device), "mean")), 6)
        if self.main:
            self.folder.append_metric(row)
        self.log(
            f"step {self.step}/{self.total} | epoch {self.epoch:.2f} | loss {row['loss']:.4f} | "
            f"lr {row['lr']:.2e} | grad norm {row['grad_norm']:.3f} | {row['samples_per_s']:.1f} samples/s"
        )
        self._progress()

    def _progress(self) -> None:
        if self.progress is not None and self.main:
            self.progress({"step": self.step, "total_steps": self.total, "epoch": self.epoch})

    def _evaluate(self) -> float | None:
        """Perplexity on the fixed eval set (main process; the others wait)."""
        ppl = None
        if self.main:
            with self.acc.autocast():
                loss, ppl = evaluate(self._model(), self.eval_arrays, self.cfg.batch_size)
            row = {"kind": "eval", "step": self.step, "epoch": self.epoch, "eval_loss": round(loss, 6),
                   "eval_perplexity": round(ppl, 4), "elapsed_s": self._elapsed()}
            self.folder.append_metric(row)
            self.log(f"eval at step {self.step}: loss {loss:.4f}, perplexity {ppl:.2f}")
            if self.cfg.pinned_prompts:  # their top-3 now: engine/training/pinned.py
                guesses = top_guesses(self._model(), self.tokenizer, self.cfg.pinned_prompts)
                self.folder.append_metric({"kind": "prompts", "step": self.step, "prompts": guesses,
                                           "head_trained": self.head_trained})
            ppl = row["eval_perplexity"]
        self.acc.wait_for_everyone()
        return ppl

    def _evaluated_steps(self) -> set[int]:
        if not self.main:
            return set()
        rows, _ = self.folder.metrics()
        return {r["step"] for r in rows if r.get("kind") == "eval"}

    def _last_ppl(self) -> float | None:
        rows, _ = self.folder.metrics()
        evals = [r for r in rows if r.get("kind") == "eval" and r["step"] == self.total]
        return evals[-1]["eval_perplexity"] if evals else None

    # ------------------------------------------------------------ saving

    def _model(self) -> nn.Module:
        return self.acc.unwrap_model(self.objective).model

    def _save_checkpoint(self) -> None:
        if self.main:
            state = {
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "epoch": self.epoch, "elapsed_s": self._elapsed(), "train_seconds": self.train_seconds,
                "samples": self.samples, "ppl_before": self.ppl_before,
            }
            if self.acc.scaler is not None:
                state["scaler"] = self.acc.scaler.state_dict()
            path = checkpoints.save_checkpoint(self.run_dir, self.step, self._model(), self.tokenizer, state)
            self.log(f"checkpoint saved: {path.name}")
        self.acc.wait_for_everyone()

    def _save_final(self) -> None:
        """final/: the whole model (full) or the adapter (LoRA), with the tokenizer."""
        if self.main:
            def write(path: Path) -> None:
                self._model().save_pretrained(path)
                self.tokenizer.save_pretrained(path)

            self.folder.write_final(write)
        self.acc.wait_for_everyone()

    def _summary(self, stopped: bool, ppl_after: float | None) -> dict:
        seconds = self.train_seconds
        rate = self.samples / seconds if seconds > 0 else 0.0
        return {
            "steps": self.step, "epochs": round(self.epoch, 4), "train_seconds": round(seconds, 3),
            "eval_perplexity_before": self.ppl_before, "eval_perplexity_after": ppl_after,
            "tokens_per_s": round(rate * self.cfg.chunk_size, 1), "samples_per_s": round(rate, 2),
            "peak_memory_bytes": peak_memory_bytes(self.acc.device), "trainable_params": self.trainable,
            "total_params": self.total_params, "method": self.cfg.method, "model_type": self.model_type,
            "stopped": stopped, "total_steps": self.total,
            # The Costs tab's calibration needs to know what hardware these figures came from.
            "device": self.acc.device.type, "mixed_precision": str(self.acc.mixed_precision),
            "processes": self.acc.num_processes,
        }
