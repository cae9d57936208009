"""The app and the training run behind bench/load.py: start and stop the app, watch the
run's train rows, turn them into throughput per phase, and account CPU per process.

Only the load script uses this module; see bench/load.py for what the benchmark does.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from gradio_client import Client  # noqa: E402

# ---------------------------------------------------------------- the app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen | None, timeout: float = 240.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the app exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "config", timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(1.0)
    raise RuntimeError(f"the app did not answer at {url} within {timeout:.0f} s")


@dataclass
class App:
    url: str
    runs_dir: Path | None = None  # known when we started the app: metrics are read from disk
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @classmethod
    def start(cls, tmp: Path) -> App:
        port = free_port()
        env = dict(os.environ, PORT=str(port), GRADIO_SERVER_NAME="127.0.0.1", MLM_RUNS_DIR=str(tmp / "runs"),
                   MLM_CACHE_DIR=str(tmp / "cache"), MLM_CANCEL_GRACE_S="15", HF_HUB_OFFLINE="1",
                   GRADIO_ANALYTICS_ENABLED="False")
        log_path = tmp / "app.log"
        with open(log_path, "wb") as log:
            # its own session: a Ctrl-C in the terminal reaches only this script, which then
            # cancels the run through the app before stopping it
            proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        app = cls(f"http://127.0.0.1:{port}/", tmp / "runs", proc, log_path)
        try:
            wait_until_up(app.url, proc)
        except BaseException:
            app.stop()
            raise
        return app

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # gradio closes its server on KeyboardInterrupt
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def new_client(url: str) -> Client:
    return Client(url, verbose=False, analytics_enabled=False, download_files=False)


# ---------------------------------------------------------------- the run and its throughput


def train_config(args) -> str:
    return json.dumps({
        "model": args.model, "method": "full", "batch_size": args.batch_size, "chunk_size": 128,
        "max_steps": args.max_steps, "log_every": args.log_every, "eval_every": 0, "save_every": 0,
        "train_size": 0, "test_size": 16, "corpus": {"source": "imdb", "max_docs": args.max_docs},
    })


class RowWatcher(threading.Thread):
    """Collects the run's train rows with the time each was first seen."""

    def __init__(self, run_id: str, app: App, period: float = 0.25):
        super().__init__(daemon=True)
        self.run_id, self.app, self.period = run_id, app, period
        self.rows: list[tuple[float, dict]] = []
        self.stop_event = threading.Event()
        self.client = None if app.runs_dir else new_client(app.url)

    def run(self) -> None:
        offset, seen = 0, set()
        while not self.stop_event.wait(self.period):
            if self.client is None:
                offset = self._read_file(offset)
            else:
                try:
                    latest = self.client.predict(self.run_id, api_name="/run_status").get("latest") or {}
                except Exception:  # a slow or failed poll only loses a sample
                    continue
                row = latest.get("train") or {}
                if row and row["step"] not in seen:
                    seen.add(row["step"])
                    self.rows.append((time.time(), row))

    def _read_file(self, offset: int) -> int:
        rows, offset = self._folder().metrics(offset)  # a half-written last line waits for the next read
        now = time.time()
        self.rows += [(now, row) for row in rows if row.get("kind") == "train"]
        return offset

    def _folder(self):
        from engine.run_folder import RunFolder

        return RunFolder(self.app.runs_dir / self.run_id)

    def train_rows(self) -> int:
        return len(self.rows)


def throughput(rows: list[tuple[float, dict]], start: float, end: float, samples_per_step: int) -> dict:
    """The run's speed over the rows whose whole log window lies in [start, end].

    Row i's window ends at offset + elapsed_s (the worker's clock mapped onto ours: the
    smallest lag between logging a row and seeing it) and starts where row i-1 ended."""
    if len(rows) < 2:
        return {"rows": 0}
    offset = min(seen - row["elapsed_s"] for seen, row in rows)
    ends = [offset + row["elapsed_s"] for _, row in rows]
    picked = [i for i in range(1, len(rows)) if ends[i - 1] >= start and ends[i] <= end]
    if not picked:
        return {"rows": 0}
    rates = [rows[i][1]["tokens_per_s"] for i in picked]
    steps = sum(rows[i][1]["step"] - rows[i - 1][1]["step"] for i in picked)
    wall = sum(rows[i][1]["elapsed_s"] - rows[i - 1][1]["elapsed_s"] for i in picked)
    return {
        "rows": len(picked), "steps": steps,
        # every row covers the same number of tokens, so the harmonic mean is total tokens / total step time
        "tokens_per_s": len(rates) / sum(1.0 / max(r, 1e-9) for r in rates),
        "samples_per_s_wall": steps * samples_per_step / max(wall, 1e-9),
    }


def wait_for_rows(client: Client, watcher: RowWatcher, run_id: str, n: int, timeout: float) -> None:
    deadline = time.time() + timeout
    while watcher.train_rows() < n:
        state = client.predict(run_id, api_name="/run_status")
        if state.get("state") not in ("queued", "running"):
            raise RuntimeError(f"the run stopped before the load: {state.get('state')}: {state.get('message')}\n"
                               + "\n".join(state.get("log_tail") or []))
        if time.time() > deadline:
            raise RuntimeError(f"no train rows after {timeout:.0f} s (state {state.get('state')})")
        time.sleep(1.0)


def wait_for_row_after(watcher: RowWatcher, moment: float, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and not any(seen > moment for seen, _ in watcher.rows):
        time.sleep(0.5)


def cancel_and_wait(client: Client, run_id: str, timeout: float = 60.0) -> str:
    try:
        client.predict(run_id, "", api_name="/cancel_run")
    except Exception as exc:  # already finished (nothing to cancel), or the app is gone
        print(f"cancel: {exc}")
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            state = client.predict(run_id, api_name="/run_status").get("state")
        except Exception as exc:
            return f"unknown ({exc})"
        if state not in ("queued", "running"):
            return state
        time.sleep(1.0)
    return "still running"


def _worker_pid(app: App, run_id: str) -> int | None:
    """The pid the run's status names (None before its worker started)."""
    from engine.run_folder import RunFolder

    return RunFolder(app.runs_dir / run_id).status().get("pid")


def kill_leftover_worker(app: App, run_id: str) -> None:
    """The worker outlives the server by design; ours must not outlive the benchmark."""
    from engine.runs.process import pid_is_worker

    if app.runs_dir is None:
        return
    pid = _worker_pid(app, run_id)
    deadline = time.time() + 15  # "cancelled" is written just before the worker exits
    while pid_is_worker(pid, run_id) and time.time() < deadline:
        time.sleep(0.5)
    if pid_is_worker(pid, run_id):
        print(f"killing the run's worker (pid {pid}), which did not stop after cancel")
        os.killpg(int(pid), signal.SIGKILL)


def renice_worker(app: App, run_id: str, increment: int) -> None:
    """An experiment knob: how much do the sessions gain if training yields the CPU to the server?"""
    if app.runs_dir is None:
        print("--nice-worker needs the app started by this script; ignored")
        return
    pid = _worker_pid(app, run_id)
    os.setpriority(os.PRIO_PGRP, int(pid), os.getpriority(os.PRIO_PROCESS, int(pid)) + increment)
    print(f"worker pid {pid} reniced by +{increment}")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), None where it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy (all processes, ours and others')."""
    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


CPU_COLUMNS = ("training worker", "web server", "load clients", "machine")


def cpu_snapshot(app: App, run_id: str) -> tuple[float, dict[str, float | None]]:
    """(time, CPU seconds so far) of the run's worker, the web server, these load clients and the machine."""
    pids = {"load clients": os.getpid(), "web server": app.proc.pid if app.proc else None}
    if app.runs_dir is not None:
        pid = _worker_pid(app, run_id)
        pids["training worker"] = int(pid) if pid else None
    used = {name: cpu_seconds(pid) if pid else None for name, pid in pids.items()}
    return time.time(), {**used, "machine": machine_busy_seconds()}


def print_cpu(phases: dict[str, tuple[tuple, tuple]]) -> None:
    """Cores each part kept busy in each phase; 'other' is the rest of the machine (other users' work)."""
    print(f"\nCPU per phase, in busy cores of {os.cpu_count()} ('other': everything else on this machine):")
    print(f"  {'phase':<13}" + "".join(f"{c:>17}" for c in (*CPU_COLUMNS[:3], "other")))
    for name, ((t0, a), (t1, b)) in phases.items():
        cores = {c: (b[c] - a[c]) / (t1 - t0) if a.get(c) is not None and b.get(c) is not None else None
                 for c in CPU_COLUMNS}
        if cores["machine"] is not None:
            ours = sum(v for c, v in cores.items() if c != "machine" and v is not None)
            cores["other"] = max(cores["machine"] - ours, 0.0)
        cells = [cores.get(c) for c in (*CPU_COLUMNS[:3], "other")]
        print(f"  {name:<13}" + "".join(f"{'-' if v is None else f'{v:.2f}':>17}" for v in cells))
