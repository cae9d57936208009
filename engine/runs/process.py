"""The server's side of a worker: start `python -m engine.runs.worker`, watch it, kill it.

A worker is a real OS process, not a thread of the web server: a crash, an OOM kill or a
hung CUDA call in training cannot take the server down, and the server can always
SIGKILL it. It runs in its own session (process group) so that a Ctrl-C meant for the
server does not kill training, and a kill reaches any helper processes it spawned.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from engine.run_folder import RunFolder

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TRAIN_TARGET = "engine.training.loop:train"
UNKNOWN_EXIT = 1 << 16  # an adopted worker is not our child: its exit status cannot be read
DISK_EXIT = 74  # EX_IOERR: the worker could not write to the runs folder (its log may not say so: same disk)


@dataclass
class WorkerHandle:
    run_id: str
    pid: int
    popen: subprocess.Popen | None = field(default=None, repr=False)  # None: adopted after a restart

    def exit_code(self) -> int | None:
        """None while the worker lives; its exit status (negative: killed by that signal) after."""
        if self.popen is not None:
            return self.popen.poll()  # also reaps it, so no zombie lingers
        return None if pid_is_worker(self.pid, self.run_id) else UNKNOWN_EXIT

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.popen is not None:
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def launch(folder: RunFolder, resume: bool = False, train_target: str = DEFAULT_TRAIN_TARGET) -> WorkerHandle:
    """Start the worker for `folder`; its stdout and stderr go to the run's log (RunFolder.log_path)."""
    cmd = [sys.executable, "-m", "engine.runs.worker", str(folder.path), "--train", train_target]
    if resume:
        cmd.append("--resume")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # On CPU the worker shares the cores with the web server. OpenMP threads that spin while
    # they wait burn the CPU they get: under bench/load.py (20 sessions, 2 cores) training
    # ran at 0.1x its idle speed with spinning and 0.4x with passive waits, which cost ~7%
    # with the cores to itself. OMP_WAIT_POLICY=ACTIVE in the server's environment reverts it.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    with open(folder.log_path, "ab") as log:
        popen = subprocess.Popen(
            cmd, cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    return WorkerHandle(folder.run_id, popen.pid, popen)


def pid_is_worker(pid: int | None, run_id: str) -> bool:
    """Is `pid` alive and our worker for `run_id`? (A pid can be reused by another process.)"""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process now holds the pid
    proc = Path(f"/proc/{int(pid)}")
    if not proc.exists():
        return True  # no /proc (macOS): the signal check is all we have
    try:
        if proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False  # dead, waiting to be reaped
        cmdline = proc.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, IndexError):
        return False
    # "engine.worker": a worker started by a server from before the engine became packages
    return ("engine.runs.worker" in cmdline or "engine.worker " in cmdline) and run_id in cmdline


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code == DISK_EXIT:
        return "stopped: it could not write to the runs folder"
    if code == UNKNOWN_EXIT:
        return "stopped (started by an earlier server, so its exit status is unknown)"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory, or killed from outside)" if -code == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exited with code {code}"
