"""`python -m engine.runs.worker <run_dir> [--resume]`: one training run in its own process.

Started by engine.runs.jobs (engine.runs.process); stdout and stderr go to the run's log.
It reads the run's settings, calls engine.training.loop.train, and records the outcome
through engine.runs.record (the same path as `python -m engine train`): completed, failed
(with the error message), cancelled (the server set the run's cancel flag; training saw it
after a step and saved a checkpoint) or interrupted (SIGTERM, or the hardware's time limit).
A SIGKILL leaves the state at "running": the server's supervisor notices the dead process
and marks the run interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

from engine.errors import UserError, disk_message
from engine.offline import ensure_mode
from engine.run_folder import RunFolder
from engine.runs.process import DEFAULT_TRAIN_TARGET, DISK_EXIT
from engine.runs.record import RESUME_HINT, Terminated, run_and_record

# config.json's "kind" picks the training function; --train overrides either (tests use fakes).
CLASSIFY_TARGET = "engine.training.classify.loop:train_classifier"
CLASSIFY_RESUME_HINT = "Resume trains it again from the start (classifier runs keep no checkpoints)."


def load_train(target: str) -> Callable:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name or "train")


class Reporter:
    """progress() callback: puts step, total and a steps/s rate (for the ETA) in status.json."""

    def __init__(self, folder: RunFolder):
        self.folder = folder
        self.first: tuple[int, float] | None = None

    def __call__(self, info: dict) -> None:
        step, now = int(info.get("step", 0)), time.time()
        if self.first is None:
            self.first = (step, now)
        rate = None
        if step > self.first[0]:
            rate = (step - self.first[0]) / max(now - self.first[1], 1e-6)
        self.folder.update_status(
            step=step, total_steps=info.get("total_steps"), epoch=info.get("epoch"),
            steps_per_s=rate, message=f"Training: step {step:,} of {info.get('total_steps') or '?'}",
        )


class StopRule:
    """should_stop(): the owner asked to cancel (the run folder's cancel flag), or the hardware's
    time limit for one run has passed (engine.hardware: CPU Spaces cap a run's minutes)."""

    def __init__(self, folder: RunFolder):
        from engine.hardware import deadline, detect

        self.folder = folder
        self.mode = detect()
        self.over_time = deadline(self.mode)
        self.timed_out = False

    def __call__(self) -> bool:
        if self.folder.cancel_requested():
            return True
        self.timed_out = self.over_time is not None and self.over_time()
        return self.timed_out

    def time_limit_minutes(self) -> float | None:
        """The per-run limit, when that (not a cancel) is what stopped training."""
        return self.mode.limits.max_minutes if self.timed_out else None


def _print_error(exc: BaseException) -> None:
    """Into worker.log, before its tail is recorded: a bad input in one line, a bug with its traceback."""
    if isinstance(exc, UserError):
        print(f"error: {exc}", flush=True)
    elif isinstance(exc, (Terminated, KeyboardInterrupt)):
        why = "SIGTERM" if isinstance(exc, Terminated) else "Ctrl-C"
        print(f"worker: stopped by {why}; resume continues from the last checkpoint", flush=True)
    else:
        traceback.print_exc()


def exit_code(exc: BaseException) -> int:
    if disk_message(exc):
        return DISK_EXIT  # the server then knows why, even when worker.log could not say it
    if isinstance(exc, UserError):
        return 2
    return 143 if isinstance(exc, (Terminated, KeyboardInterrupt)) else 1


def run(run_dir: Path, resume: bool, train_target: str) -> int:
    """Train the run in `run_dir` and record the outcome; the exit code says how it ended."""
    folder = RunFolder(run_dir)
    stop: StopRule | None = None

    classify = folder.kind() == "classify"

    def train() -> dict:
        nonlocal stop
        stop = StopRule(folder)
        if classify:
            return _train_classifier(folder, resume, train_target, stop)
        from engine.training.config import TrainConfig

        cfg = TrainConfig.from_dict(folder.settings())
        fn = load_train(train_target)
        return fn(cfg, folder.path, should_stop=stop, resume=resume, progress=Reporter(folder))

    try:
        run_and_record(folder, train, starting="Loading model and data", on_error=_print_error,
                       resume_hint=CLASSIFY_RESUME_HINT if classify else RESUME_HINT,
                       time_limit_minutes=lambda: stop.time_limit_minutes() if stop else None)
    except BaseException as exc:  # noqa: BLE001 - recorded in status.json; the exit code says which kind
        return exit_code(exc)
    return 0


def _train_classifier(folder: RunFolder, resume: bool, train_target: str, stop: StopRule) -> dict:
    """A classifier run: its own config and loop. It keeps no checkpoints (minutes long), so a
    resume trains again from the start and the earlier attempt's rows are dropped first."""
    from engine.training.classify.config import ClassifyConfig

    cfg = ClassifyConfig.from_dict(folder.settings())
    fn = load_train(CLASSIFY_TARGET if train_target == DEFAULT_TRAIN_TARGET else train_target)
    if resume:
        folder.truncate_metrics_after(-1)
    return fn(cfg, folder.path, should_stop=stop, progress=Reporter(folder))


def _on_sigterm(signum, frame):
    raise Terminated()


LIBRARIES = r"(transformers|torch|peft|accelerate|datasets|huggingface_hub)(\..*)?"


def quiet_library_warnings() -> None:
    """Drop the libraries' deprecation and advice warnings from worker.log: the log is read by people
    watching a run, and these say nothing about it. Warnings from our own code still show."""
    for category in (FutureWarning, UserWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=LIBRARIES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.runs.worker", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--train", default=DEFAULT_TRAIN_TARGET,
                        help="module:function to run (default: by the run's kind)")
    args = parser.parse_args(argv)
    ensure_mode()  # before transformers or datasets are imported
    quiet_library_warnings()
    signal.signal(signal.SIGTERM, _on_sigterm)
    how = "resuming" if args.resume else "starting"
    print(f"worker: run {args.run_dir.name}, pid {os.getpid()}, {how}", flush=True)
    return run(args.run_dir.resolve(), args.resume, args.train)


if __name__ == "__main__":
    sys.exit(main())
