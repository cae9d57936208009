"""Run training and record how it ended: the one path shared by the worker process
(engine.runs.worker) and the terminal (`python -m engine train`, engine.cli.train).

status.json goes "running" before training starts and, whatever happens, ends in one of:
completed (with the perplexities), cancelled (stopped on request, after a checkpoint),
interrupted (a time limit, SIGTERM or Ctrl-C) or failed (with the error's text), always
with the last log lines. A SIGKILL cannot be recorded here: the server's supervisor notices
the dead worker and marks the run interrupted (engine.runs.jobs).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from engine.errors import UserError, disk_message
from engine.run_folder import RunFolder

RESUME_HINT = "Resume continues from there."


class Terminated(Exception):
    """SIGTERM arrived (a server shutdown, a container stop): stop and say so."""


def outcome(result: dict, time_limit_minutes: float | None = None, resume_hint: str = RESUME_HINT) -> dict:
    """status.json fields for a train() that returned its summary.

    time_limit_minutes: set when the hardware's limit for one run (engine.hardware) stopped it."""
    step = result.get("steps", result.get("step"))
    if result.get("stopped") and time_limit_minutes is not None:
        return {"state": "interrupted", "step": step, "message": f"Stopped at step {step}: this hardware allows "
                                                   f"{time_limit_minutes:g} minutes per run. A checkpoint was "
                                                   f"saved; {resume_hint}"}
    if result.get("stopped") and result.get("kind") == "classify":  # a classifier saves no checkpoint
        return {"state": "cancelled", "step": step, "message": f"Cancelled at step {step}. {resume_hint}"}
    if result.get("stopped"):
        return {"state": "cancelled", "step": step,
                "message": f"Cancelled at step {step}; a checkpoint was saved, so {resume_hint}"}
    if result.get("kind") == "classify":
        return {"state": "completed", "step": step, "message": f"Completed {step} steps: accuracy "
                f"{result.get('accuracy', 0):.4f}, F1 {result.get('f1', 0):.4f}."}
    before, after = result.get("eval_perplexity_before"), result.get("eval_perplexity_after")
    message = f"Completed {step} steps."
    if before is not None and after is not None:
        message += f" Eval perplexity {before:,.2f} before, {after:,.2f} after."
    return {"state": "completed", "message": message, "step": step}


def failure(exc: BaseException) -> dict:
    """status.json fields for a train() that raised."""
    if isinstance(exc, UserError):  # bad input: its message says what to fix
        return {"state": "failed", "message": str(exc)}
    if isinstance(exc, (Terminated, KeyboardInterrupt)):
        why = "SIGTERM" if isinstance(exc, Terminated) else "Ctrl-C"
        return {"state": "interrupted",
                "message": f"Stopped by {why} (a shutdown). Resume continues from the last checkpoint."}
    reason = disk_message(exc)
    if reason:  # the OS's text names server paths; the user needs what to do
        return {"state": "failed", "message": f"Training stopped: {reason}. {RESUME_HINT}"}
    return {"state": "failed", "message": f"Training failed: {type(exc).__name__}: {exc}"}


def earlier_attempts(status: dict) -> float:
    """Seconds the run already ran in earlier attempts, so a resume's elapsed time goes on, not from zero."""
    before = float(status.get("elapsed_before") or 0.0)
    started, finished = status.get("started_at"), status.get("finished_at")
    if started and finished and finished >= started:
        before += finished - started
    return round(before, 3)


def run_and_record(
    folder: RunFolder,
    train: Callable[[], dict],
    *,
    starting: str = "",
    resume_hint: str = RESUME_HINT,
    time_limit_minutes: Callable[[], float | None] = lambda: None,
    tail: Callable[[], list[str]] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    write: bool = True,
) -> dict:
    """Call `train()` between a "running" and a final status; return its summary, or re-raise.

    time_limit_minutes(): the hardware's per-run limit when that is what stopped training.
    tail(): the log lines to keep in status.json (default: the tail of worker.log).
    on_error(exc): runs before the final status is written (the worker prints the traceback
    into worker.log there, so the recorded tail shows it).
    write=False: another process records (the non-main processes of a multi-GPU run)."""
    tail = tail or folder.log_tail
    # A resumed run starts afresh: clear the last attempt's finish time (the progress bar's elapsed).
    if write:
        folder.update_status(state="running", pid=os.getpid(), started_at=time.time(), finished_at=None,
                             message=starting, elapsed_before=earlier_attempts(folder.status()))
    try:
        result = train() or {}
    except BaseException as exc:
        if on_error is not None:
            on_error(exc)
        _finish(folder, failure(exc), tail, write)
        raise
    _finish(folder, outcome(result, time_limit_minutes(), resume_hint), tail, write)
    return result


def _finish(folder: RunFolder, fields: dict, tail: Callable[[], list[str]], write: bool) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()  # what training printed belongs in the tail
        except OSError:
            pass  # worker.log is on the full disk too: the status matters more
    if write:
        folder.update_status(**fields, finished_at=time.time(), log_tail=tail())
