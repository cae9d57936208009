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

from engine import run_folder as paths
from engine import run_folder as run_files
from engine.errors import UserError
from engine.training.config import RECORD_KEYS, TrainConfig, default_lr

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
    cfg = TrainConfig.from_dict(raw)
    if args.dataset:
        from engine.cli.prepare import corpus_config

        cfg.corpus = corpus_config(args.dataset, args.text_column or "text", cfg.corpus.seed)
    if args.max_docs is not None:
        cfg.corpus = dataclasses.replace(cfg.corpus, max_docs=args.max_docs)
    return cfg


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
    ids = [paths.new_run_id() if state.is_main_process else None]
    if state.num_processes > 1:
        broadcast_object_list(ids)
    return ids[0]


def _is_main() -> bool:
    from accelerate import PartialState

    from engine.training.loop import cpu_only

    return PartialState(cpu=cpu_only()).is_main_process


def new_run(cfg: TrainConfig) -> tuple[str, Path]:
    run_id = _shared_run_id()
    run_dir = paths.runs_dir() / run_id
    if _is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        created = time.time()
        run_files.write_json_atomic(run_dir / "config.json", {**cfg.to_dict(), "run_id": run_id, "created_at": created})
        run_files.update_status(run_dir, state="queued", message="", pid=os.getpid(), created_at=created,
                                step=0, total_steps=None, log_tail=[])
    return run_id, run_dir


def existing_run(run_id: str) -> tuple[TrainConfig, Path]:
    if not paths.valid_run_id(run_id):
        raise UserError(f"{run_id!r} is not a run id (letters, digits and dashes).")
    run_dir = paths.runs_dir() / run_id
    if not (run_dir / "config.json").exists():
        raise UserError(f"No run {run_id!r} in {paths.runs_dir()}.")
    if run_files.read_status(run_dir).get("state") == "completed" and (run_dir / "final").is_dir():
        raise UserError(f"Run {run_id} has already completed: its model is in {run_dir / 'final'}.")
    return TrainConfig.from_dict(_read_config(str(run_dir / "config.json"))), run_dir


class _Console:
    """Progress bar, log lines above it, and status.json kept up to date (main process)."""

    def __init__(self, run_dir: Path, main: bool):
        from tqdm.auto import tqdm

        self.run_dir, self.main = run_dir, main
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
            run_files.update_status(self.run_dir, log_tail=list(self.tail), **changes)


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
    from engine.training.loop import train

    console = _Console(run_dir, _is_main())
    if console.main:
        print(f"run {run_id}\nfolder {run_dir}", flush=True)
    console.status(state="running", pid=os.getpid(), started_at=time.time(), finished_at=None,
                   message="resuming" if resume else "")
    try:
        summary = train(cfg, run_dir, should_stop=_stop_on_ctrl_c(), resume=resume,
                        progress=console.progress, log=console.log)
    except BaseException as exc:
        state = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        console.status(state=state, message=str(exc) or type(exc).__name__, finished_at=time.time())
        raise
    finally:
        console.bar.close()
    if summary.get("stopped"):
        console.status(state="cancelled", finished_at=time.time(),
                       message=f"stopped at step {summary['steps']}; continue with --resume {run_id}")
    else:
        console.status(state="completed", finished_at=time.time(),
                       message=f"perplexity {summary['eval_perplexity_before']} -> {summary['eval_perplexity_after']}")
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
