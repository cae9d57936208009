"""train_classifier: one classifier run (full or LoRA) into a run folder, like an MLM run's.

The caller writes config.json and status.json; this writes metrics.jsonl (train rows and eval
rows), final/ and summary.json through engine.run_folder. A plain PyTorch loop rather than
Trainer, for the same reasons as the MLM loop: our batches, our CPU speed-ups and rows in the
run folder's format. No checkpoints: a classifier run is minutes, and a stopped one is re-run.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from engine import mlm_head
from engine.run_folder import RunFolder
from engine.training import cpu_allocator, cpu_dropout, lora
from engine.training.classify import data
from engine.training.classify.config import ClassifyConfig, check_max_length
from engine.training.classify.metrics import classification_metrics
from engine.training.classify.model import build_classifier, save_final, wrap_lora
from engine.training.classify.report import summary_of
from engine.training.optim import param_groups

Log = Callable[[str], None]


def device_for_training() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if "OMP_NUM_THREADS" not in os.environ:  # in a container torch may count the host's cores
        torch.set_num_threads(max(1, min(torch.get_num_threads(), len(os.sched_getaffinity(0)))))
    return torch.device("cpu")


def speed_up(model, device: torch.device) -> None:
    """The MLM loop's CPU speed-ups, and the last layer computed at [CLS] only (all the head reads)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    mlm_head.install(inner.base_model)  # the last layer's subset path (engine.mlm_head)
    if device.type == "cpu" and cpu_dropout.wanted():
        cpu_dropout.install(model)
    if device.type == "cpu" and cpu_allocator.wanted():
        cpu_allocator.install()


def cls_rows(batch: dict) -> torch.Tensor:
    """Position 0 of every sequence: the only hidden state the classifier head reads."""
    rows = torch.zeros_like(batch["input_ids"], dtype=torch.bool)
    rows[:, 0] = True
    return rows


def forward(model, batch: dict):
    with mlm_head.only_rows(cls_rows(batch)):
        return model(**batch)


def build_optimizer(model, cfg: ClassifyConfig, total_steps: int):
    from transformers import get_linear_schedule_with_warmup

    groups = [g for g in param_groups(model, cfg.weight_decay) if g["params"]]
    fused = all(p.device.type in ("cpu", "cuda") for g in groups for p in g["params"])
    optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate, fused=fused)
    warmup = int(cfg.warmup_ratio * total_steps)
    return optimizer, get_linear_schedule_with_warmup(optimizer, warmup, total_steps)


def train_step(model, batch: dict, optimizer, scheduler, max_grad_norm: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step; (loss, predicted ids), both left on the device."""
    out = forward(model, batch)
    out.loss.backward()
    params = [p for g in optimizer.param_groups for p in g["params"]]
    torch.nn.utils.clip_grad_norm_(params, max_grad_norm or math.inf)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return out.loss.detach(), out.logits.detach().argmax(-1)


@torch.inference_mode()
def predict(model, features: list[dict], tokenizer, batch_size: int, device) -> np.ndarray:
    """(n, classes) probabilities in the order of `features`."""
    was_training = model.training
    model.eval()
    probs = None
    for rows, batch in data.eval_batches(features, tokenizer, batch_size):
        batch = {k: v.to(device) for k, v in batch.items() if k != "labels"}
        p = torch.softmax(forward(model, batch).logits.float(), -1).cpu().numpy()
        probs = np.zeros((len(features), p.shape[1]), dtype=np.float32) if probs is None else probs
        probs[rows] = p
    model.train(was_training)
    return probs


def train_classifier(cfg: ClassifyConfig, run_dir: Path, should_stop: Callable[[], bool] | None = None, *,
                     progress: Callable[[dict], None] | None = None, log: Log | None = None) -> dict:
    """Train and evaluate into `run_dir`; return the summary (also written to summary.json).

    should_stop is polled after every optimizer step: True ends the run at once with an
    evaluation and {"stopped": True} (no final/). progress gets {"step", "total_steps", "epoch"}.
    """
    log = log or (lambda line: print(line, flush=True))
    return _Run(cfg.validated(), Path(run_dir), should_stop, progress, log).execute()


class _Run:
    def __init__(self, cfg, run_dir, should_stop, progress, log):
        self.cfg, self.run_dir, self.should_stop, self.progress, self.log = cfg, run_dir, should_stop, progress, log
        run_dir.mkdir(parents=True, exist_ok=True)
        self.folder = RunFolder(run_dir)
        self.device = device_for_training()
        self.evals: list[dict] = []
        self.train_seconds, self.samples = 0.0, 0

    def execute(self) -> dict:
        cfg = self.cfg
        splits = data.labelled_splits(cfg)  # bad labels fail before any model is loaded
        self.labels = splits.labels
        model, self.tokenizer, self.info = build_classifier(cfg.model, splits.labels, cfg.seed)
        check_max_length(cfg.max_length, self.info.max_length, self.info.name)
        self.train_features = data.encode(splits.train_texts, splits.train_labels, self.tokenizer, cfg.max_length)
        self.test_features = data.encode(splits.test_texts, splits.test_labels, self.tokenizer, cfg.max_length)
        self.test_labels = splits.test_labels
        torch.manual_seed(cfg.seed)  # LoRA's initial matrices and dropout
        if cfg.method == "lora":
            model = wrap_lora(model, cfg, self.info)
        self.model = model.to(self.device).train()
        speed_up(self.model, self.device)
        self.loader = data.train_loader(self.train_features, self.tokenizer, cfg.batch_size, cfg.seed)
        self.total = max(1, math.ceil(len(self.loader) * cfg.epochs))
        self.optimizer, self.scheduler = build_optimizer(self.model, cfg, self.total)
        self.trainable, self.total_params = lora.count_params(self.model)
        self.log(
            f"{cfg.method} classifier on {self.info.name} ({self.info.model_type}): {len(self.labels)} classes, "
            f"{len(self.train_features):,} train / {len(self.test_features):,} test examples, {self.total:,} steps "
            f"at lr {cfg.learning_rate:g}; {self.trainable:,} of {self.total_params:,} parameters trainable; "
            f"device {self.device}"
        )
        return self._loop()

    def _loop(self) -> dict:
        cfg, step, stopped = self.cfg, 0, False
        self.start = time.perf_counter()
        window = {"loss": 0.0, "correct": 0, "n": 0, "seconds": 0.0}
        self._progress(step)
        while step < self.total and not stopped:
            for batch in self.loader:
                began = time.perf_counter()
                batch = {k: v.to(self.device) for k, v in batch.items()}
                loss, predicted = train_step(self.model, batch, self.optimizer, self.scheduler, cfg.max_grad_norm)
                n = len(batch["labels"])
                window["loss"] += float(loss) * n
                window["correct"] += int((predicted == batch["labels"]).sum())
                window["n"] += n
                window["seconds"] += time.perf_counter() - began
                step += 1
                if step % cfg.log_every == 0 or step == self.total:
                    self._log_train(step, window)
                    window = {"loss": 0.0, "correct": 0, "n": 0, "seconds": 0.0}
                stopped = bool(self.should_stop and self.should_stop())
                if step == self.total or stopped:
                    break
                if cfg.eval_every and step % cfg.eval_every == 0:
                    self._evaluate(step)
        self._evaluate(step)
        if not stopped:
            save_final(self.folder, self.model, self.tokenizer, cfg, self.labels)
        summary = summary_of(self, step, stopped)
        self.folder.write_summary(summary)
        last = self.evals[-1]
        ending = "Stopped" if stopped else "Done"
        self.log(f"{ending} at step {step}: accuracy {last['accuracy']:.4f}, F1 {last['f1']:.4f}")
        return summary

    def epoch(self, step: int) -> float:
        return round(step / max(1, len(self.loader)), 4)

    def _log_train(self, step: int, window: dict) -> None:
        self.train_seconds += window["seconds"]
        self.samples += window["n"]
        row = {
            "kind": "train", "step": step, "epoch": self.epoch(step),
            "loss": round(window["loss"] / max(window["n"], 1), 6),
            "accuracy": round(window["correct"] / max(window["n"], 1), 6),
            "lr": float(self.scheduler.get_last_lr()[0]),
            "samples_per_s": round(window["n"] / max(window["seconds"], 1e-9), 3),
            "elapsed_s": round(time.perf_counter() - self.start, 3),
        }
        self.folder.append_metric(row)
        self.log(f"step {step}/{self.total} | loss {row['loss']:.4f} | accuracy {row['accuracy']:.3f} | "
                 f"lr {row['lr']:.2e} | {row['samples_per_s']:.1f} samples/s")
        self._progress(step)

    def _evaluate(self, step: int) -> None:
        probs = predict(self.model, self.test_features, self.tokenizer, self.cfg.batch_size * 2, self.device)
        metrics = classification_metrics(self.test_labels, probs.argmax(-1), self.labels)
        row = {"kind": "eval", "step": step, "epoch": self.epoch(step), **metrics,
               "elapsed_s": round(time.perf_counter() - self.start, 3)}
        self.folder.append_metric(row)
        self.evals.append(row)
        self.log(f"eval at step {step}: accuracy {row['accuracy']:.4f}, precision {row['precision']:.4f}, "
                 f"recall {row['recall']:.4f}, F1 {row['f1']:.4f}")

    def _progress(self, step: int) -> None:
        if self.progress is not None:
            self.progress({"step": step, "total_steps": self.total, "epoch": self.epoch(step)})
