"""`python -m engine.runs.worker <run_dir> [--resume]`: one training run in its own process.

Started by engine.runs.jobs (engine/worker_process.py); stdout and stderr go to
run_dir/worker.log. It reads config.json, calls engine.training.loop.train, and records the
outcome in status.json: completed, failed (with the error message), cancelled (the
server put a `cancel` file in the run folder; training saw it after a step and saved a
checkpoint) or interrupted (SIGTERM). A SIGKILL leaves the state at "running": the
server's supervisor notices the dead process and marks the run interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from engine.offline import ensure_mode

CANCEL_FLAG = "cancel"


class Terminated(Exception):
    """SIGTERM arrived (a server shutdown, a container stop): stop and say so."""


def load_train(target: str) -> Callable:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name or "train")


def cancel_requested(run_dir: Path) -> bool:
    return (Path(run_dir) / CANCEL_FLAG).exists()


class Reporter:
    """progress() callback: puts step, total and a steps/s rate (for the ETA) in status.json."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.first: tuple[int, float] | None = None

    def __call__(self, info: dict) -> None:
        from engine.run_folder import update_status

        step, now = int(info.get("step", 0)), time.time()
        if self.first is None:
            self.first = (step, now)
        rate = None
        if step > self.first[0]:
            rate = (step - self.first[0]) / max(now - self.first[1], 1e-6)
        update_status(
            self.run_dir, step=step, total_steps=info.get("total_steps"), epoch=info.get("epoch"),
            steps_per_s=rate, message=f"Training: step {step:,} of {info.get('total_steps') or '?'}",
        )


class StopRule:
    """should_stop(): the owner asked to cancel (a `cancel` file), or the hardware's time
    limit for one run has passed (engine.hardware: CPU Spaces cap a run's minutes)."""

    def __init__(self, run_dir: Path):
        from engine.hardware import deadline, detect

        self.run_dir = run_dir
        self.mode = detect()
        self.over_time = deadline(self.mode)
        self.timed_out = False

    def __call__(self) -> bool:
        if cancel_requested(self.run_dir):
            return True
        self.timed_out = self.over_time is not None and self.over_time()
        return self.timed_out


def outcome(result: dict, stop: StopRule | None = None) -> dict:
    """status.json fields for a train() that returned."""
    step = result.get("steps", result.get("step"))
    if result.get("stopped") and stop is not None and stop.timed_out:
        minutes = stop.mode.limits.max_minutes
        return {"state": "interrupted", "message": f"Stopped at step {step}: this hardware allows {minutes:g} minutes "
                                                   f"per run. A checkpoint was saved; Resume continues from there."}
    if result.get("stopped"):
        return {"state": "cancelled",
                "message": f"Cancelled at step {step}; a checkpoint was saved, so Resume continues from there."}
    before, after = result.get("eval_perplexity_before"), result.get("eval_perplexity_after")
    message = f"Completed {step} steps."
    if before is not None and after is not None:
        message += f" Eval perplexity {before:,.2f} before, {after:,.2f} after."
    return {"state": "completed", "message": message, "step": step}


def run(run_dir: Path, resume: bool, train_target: str) -> int:
    from engine.errors import UserError
    from engine.run_folder import log_tail, read_json, update_status
    from engine.training.config import TrainConfig

    # A resumed run starts afresh: clear the last attempt's finish time (the progress bar's elapsed).
    update_status(run_dir, state="running", pid=os.getpid(), started_at=time.time(), finished_at=None,
                  message="Loading model and data")
    code, fields = 0, {}
    try:
        cfg = TrainConfig.from_record(read_json(run_dir / "config.json"))
        train = load_train(train_target)
        stop = StopRule(run_dir)
        result = train(cfg, run_dir, should_stop=stop, resume=resume, progress=Reporter(run_dir))
        fields = outcome(result or {}, stop)
    except UserError as exc:
        print(f"error: {exc}", flush=True)
        code, fields = 2, {"state": "failed", "message": str(exc)}
    except (Terminated, KeyboardInterrupt) as exc:
        why = "SIGTERM" if isinstance(exc, Terminated) else "Ctrl-C"
        print(f"worker: stopped by {why}; resume continues from the last checkpoint", flush=True)
        code, fields = 143, {"state": "interrupted",
                             "message": f"Stopped by {why} (a shutdown). Resume continues from the last checkpoint."}
    except BaseException as exc:  # noqa: BLE001 - anything else is a bug: keep its traceback in the log
        traceback.print_exc()
        sys.stdout.flush()
        code, fields = 1, {"state": "failed", "message": f"Training failed: {type(exc).__name__}: {exc}"}
    sys.stdout.flush()
    sys.stderr.flush()
    update_status(run_dir, **fields, finished_at=time.time(), log_tail=log_tail(run_dir))
    return code


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.runs.worker", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--train", default="engine.training.loop:train", help="module:function to run")
    args = parser.parse_args(argv)
    ensure_mode()  # before transformers or datasets are imported
    signal.signal(signal.SIGTERM, _on_sigterm)
    how = "resuming" if args.resume else "starting"
    print(f"worker: run {args.run_dir.name}, pid {os.getpid()}, {how}", flush=True)
    return run(args.run_dir.resolve(), args.resume, args.train)


if __name__ == "__main__":
    sys.exit(main())
