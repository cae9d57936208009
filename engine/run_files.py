"""Read and write the files of one run folder (layout: docs/interfaces.md).

Writers are crash-safe: status.json is replaced atomically and metrics.jsonl is
append-only with one complete line per write, so a reader never sees half a row and a
killed worker loses at most the row it was writing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

STATES = ("queued", "running", "completed", "failed", "cancelled", "interrupted")
FINAL_STATES = ("completed", "failed", "cancelled", "interrupted")


def write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)


def read_json(path: Path, default: dict | None = None) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return dict(default or {})


def read_status(run_dir: Path) -> dict:
    return read_json(Path(run_dir) / "status.json", {"state": "unknown"})


def update_status(run_dir: Path, **changes) -> dict:
    """Merge `changes` into status.json (read, modify, atomic replace)."""
    path = Path(run_dir) / "status.json"
    status = read_json(path)
    status.update(changes, updated_at=time.time())
    write_json_atomic(path, status)
    return status


def append_metric(run_dir: Path, row: dict) -> None:
    line = json.dumps(row, separators=(",", ":")) + "\n"
    with open(Path(run_dir) / "metrics.jsonl", "a") as f:
        f.write(line)
        f.flush()


def read_metrics(run_dir: Path, offset: int = 0) -> tuple[list[dict], int]:
    """Rows appended since byte `offset`, and the new offset (pollers read only what is new).

    A trailing line without its newline is still being written: leave it for next time.
    """
    path = Path(run_dir) / "metrics.jsonl"
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            chunk = f.read()
    except FileNotFoundError:
        return [], offset
    end = chunk.rfind(b"\n") + 1
    rows = []
    for line in chunk[:end].splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a crash mid-write; the rest of the file is intact
    return rows, offset + end


def truncate_metrics_after(run_dir: Path, step: int) -> None:
    """On resume from a checkpoint at `step`, drop rows the resumed run will log again."""
    path = Path(run_dir) / "metrics.jsonl"
    rows, _ = read_metrics(run_dir)
    keep = [r for r in rows if r.get("step", 0) <= step]
    tmp = path.with_name(".metrics.jsonl.tmp")
    tmp.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in keep))
    os.replace(tmp, path)
