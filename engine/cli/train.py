"""`python -m engine train`: one training run from a terminal, into the same run folder as the app.

    python -m engine train --model bundled --dataset imdb --train-size 2000 --max-steps 300
    python -m engine train --config cfg.json --lr 1e-4      # flags override the file
    python -m engine train --resume 20260101-120000-0123abcd4567ef89
    accelerate launch -m engine train --config cfg.json     # several GPUs

Ctrl-C stops at the end of the current step with a checkpoint; --resume continues it.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import signal
import time
from pathlib import Path

from engine.data.corpus import CorpusConfig
from engine.errors import UserError
from engine.run_folder import RunFolder, new_run_id, runs_dir, valid_run_id
from engine.training.config import RECORD_KEYS, TrainConfig, default_lr, default_name

LOG_TAIL = 20


def setting_fields() -> list[dataclasses.Field]:
    """The TrainConfig fields that are flags of their own (the corpus has --dataset and friends)."""
    return [f for f in dataclasses.fields(TrainConfig) if f.metadata.get("cli", True)]


def add_setting_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, named after it (--batch-size), plus its aliases (--lr).

    Values stay strings: TrainConfig.validated() parses them, with the same messages as the
    app's form and API. Booleans take --flag / --no-flag."""
    group = p.add_argument_group("training settings (TrainConfig fields; they override --config)")
    for f in setting_fields():
        names = ["--" + n.replace("_", "-") for n in (f.name, *f.metadata.get("aliases", ()))]
        extra = {"action": argparse.BooleanOptionalAction} if f.type == "bool" else {}
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        text = f.metadata.get("help", "")
        if "default" not in text:
            text += f" [{','.join(default) if isinstance(default, list) else default}]"
        group.add_argument(*names, dest=f.name, default=None, help=text, **extra)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="a TrainConfig JSON file (flags override its values)")
    p.add_argument("--resume", metavar="RUN_ID", help="continue this run from its last checkpoint")
    p.add_argument("--dataset", help="imdb, rotten_tomatoes, a Hub id, or a CSV/JSON/text file")
    p.add_argument("--corpus-id", help="a stored corpus (its id from the app's corpus list or `prepare`)")
    p.add_argument("--text-column", default=None, help="text column of a Hub dataset or file")
    p.add_argument("--max-docs", type=int, help="use only this many documents of the corpus")
    add_setting_flags(p)
    return p


def build_config(args: argparse.Namespace) -> TrainConfig:
    raw = _read_config(args.config) if args.config else {}
    for f in setting_fields():
        value = getattr(args, f.name)
        if value is not None:
            raw[f.name] = value
    if "learning_rate" not in raw:  # the course's rate for the method: 2e-5 full, 2e-4 LoRA
        raw["learning_rate"] = default_lr(raw.get("method", "full"))
    if "mlm_probability" not in raw:  # the family's own rate: 15% for BERTs, 30% for ModernBERT
        raw["mlm_probability"] = model_masking_rate(raw.get("model") or "bundled")
    cfg = TrainConfig.from_dict(raw)
    if args.dataset:
        from engine.cli.prepare import corpus_config

        cfg.corpus = corpus_config(args.dataset, args.text_column or "text", cfg.corpus.seed)
    if args.corpus_id:
        from engine.data import store

        cfg.corpus = CorpusConfig(source="stored", corpus_id=store.get(args.corpus_id).corpus_id, seed=cfg.corpus.seed)
    if args.max_docs is not None:
        cfg.corpus = dataclasses.replace(cfg.corpus, max_docs=args.max_docs)
    return cfg


def model_masking_rate(model: str) -> float:
    from engine.architectures import BERT_MASK_RATE, masking_default
    from engine.models import model_type_of

    try:
        return masking_default(model_type_of(str(model)))[0]
    except UserError:  # a model that cannot be read: the run's own check says why
        return BERT_MASK_RATE


def _read_config(path: str) -> dict:
    try:
        raw = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UserError(f"Cannot read the config file {path!r}: {exc.strerror}.") from None
    except ValueError as exc:
        raise UserError(f"The config file {path!r} is not valid JSON: {exc}.") from None
    if not isinstance(raw, dict):
        raise UserError(f"The config file {path!r} must hold one JSON object of training settings.")
    # A run's own config.json works as a template: its id and creation time are not settings.
    return {k: v for k, v in raw.items() if k not in RECORD_KEYS}


def _shared_run_id() -> str:
    """A new run id, the same in every process under `accelerate launch`."""
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    from engine.training.loop import cpu_only

    state = PartialState(cpu=cpu_only())
    ids = [new_run_id() if state.is_main_process else None]
    if state.num_processes > 1:
        broadcast_object_list(ids)
    return ids[0]


def _is_main() -> bool:
    from accelerate import PartialState

    from engine.training.loop import cpu_only

    return PartialState(cpu=cpu_only()).is_main_process


def new_run(cfg: TrainConfig) -> tuple[str, Path]:
    run_id, root = _shared_run_id(), runs_dir()
    if _is_main():
        created = time.time()
        if hasattr(cfg, "name") and not cfg.name:  # a ClassifyConfig (python -m engine classify) has no name
            cfg.name = default_name(cfg, created)
        folder = RunFolder.create(root, run_id, cfg.to_dict(), created)
        folder.update_status(state="queued", message="", pid=os.getpid(), created_at=created,
                             step=0, total_steps=None, log_tail=[])
    return run_id, root / run_id


def existing_run(run_id: str) -> tuple[TrainConfig, Path]:
    if not valid_run_id(run_id):
        raise UserError(f"{run_id!r} is not a run id (letters, digits and dashes).")
    folder = RunFolder.find(run_id)
    if folder is None:  # a terminal user may have another MLM_RUNS_DIR in mind: name ours
        raise UserError(f"No run {run_id!r} in {runs_dir()}.")
    if folder.status().get("state") == "completed" and folder.final_dir.is_dir():
        raise UserError(f"Run {folder.run_id} has already completed: its model is in {folder.final_dir}.")
    return TrainConfig.from_dict(folder.settings()), folder.path


class _Console:
    """Progress bar, log lines above it, and status.json kept up to date (main process)."""

    def __init__(self, folder: RunFolder, main: bool):
        from tqdm.auto import tqdm

        self.folder, self.main = folder, main
        self.tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL)
        self.bar = tqdm(total=None, unit="step", disable=not main, dynamic_ncols=True)

    def log(self, line: str) -> None:
        self.tail.append(line)
        self.bar.write(line)

    def progress(self, info: dict) -> None:
        if self.bar.total != info["total_steps"]:
            self.bar.total = info["total_steps"]
        self.bar.set_postfix(epoch=f"{info['epoch']:.2f}", refresh=False)
        self.bar.update(info["step"] - self.bar.n)
        self.status(step=info["step"], total_steps=info["total_steps"])

    def status(self, **changes) -> None:
        if self.main:
            self.folder.update_status(log_tail=list(self.tail), **changes)


def _stop_on_ctrl_c():
    """First Ctrl-C: stop after this step with a checkpoint. A second one: stop now."""
    asked = {"stop": False}

    def handler(signum, frame):
        if asked["stop"]:
            raise KeyboardInterrupt
        asked["stop"] = True
        print("\nStopping after this step (Ctrl-C again to quit at once)...", flush=True)

    signal.signal(signal.SIGINT, handler)
    return lambda: asked["stop"]


def run(cfg: TrainConfig, run_id: str, run_dir: Path, resume: bool) -> dict:
    from engine.runs.record import run_and_record
    from engine.training.loop import train

    folder = RunFolder(run_dir)
    console = _Console(folder, _is_main())
    if console.main:
        print(f"run {run_id}\nfolder {run_dir}", flush=True)
    should_stop = _stop_on_ctrl_c()
    try:
        # There is no worker.log here: status.json keeps the lines this console printed.
        summary = run_and_record(
            folder, lambda: train(cfg, run_dir, should_stop=should_stop, resume=resume,
                                  progress=console.progress, log=console.log),
            starting="resuming" if resume else "", resume_hint=f"continue with --resume {run_id}",
            tail=lambda: list(console.tail), write=console.main)
    finally:
        console.bar.close()
    if console.main:
        print(json.dumps(summary, indent=1), flush=True)
    return summary


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.resume:
        cfg, run_dir = existing_run(args.resume)
        run_id = args.resume
    else:
        cfg = build_config(args)
        run_id, run_dir = new_run(cfg)
    run(cfg, run_id, run_dir, resume=bool(args.resume))
    return 0
