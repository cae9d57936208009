"""The one owner of a run folder's format (docs/interfaces.md).

Where runs live, what a run id may look like, and every file of a run folder: config.json,
status.json, owner.json, metrics.jsonl, summary.json, worker.log, checkpoints/, final/.
Writers are crash-safe: status.json is replaced atomically and metrics.jsonl is append-only
with one complete line per write, so a reader never sees half a row and a killed worker
loses at most the row it was writing. A freshly started server sees exactly what an earlier
one left behind.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections import deque
from pathlib import Path

from engine.errors import UserError


def runs_dir() -> Path:
    explicit = os.environ.get("MLM_RUNS_DIR")
    if explicit:
        root = Path(explicit)
    elif os.path.isdir("/data") and os.access("/data", os.W_OK):
        root = Path("/data/runs")
    else:
        root = Path("runs")
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def new_run_id() -> str:
    """Sortable by time, unguessable by content: 'YYYYmmdd-HHMMSS-' + 16 random hex digits."""
    return time.strftime("%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(8)


def valid_run_id(run_id: str) -> bool:
    """Run ids come from URLs: allow only our own shape, never a path."""
    return bool(run_id) and len(run_id) <= 64 and all(c.isalnum() or c == "-" for c in run_id)


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


RESUMABLE_STATES = ("interrupted", "cancelled", "failed")
LOG_TAIL_LINES = 20


def run_folder(root: Path, run_id: str) -> Path:
    """The folder of an existing run, or a UserError that says what was wrong with the id."""
    run_id = (run_id or "").strip()
    if not run_id:
        raise UserError("No run selected: start a run or pick one from the history.")
    if not valid_run_id(run_id):
        raise UserError(f"{run_id!r} is not a run id (ids look like 20260101-120000-0123456789abcdef).")
    folder = Path(root) / run_id
    if not (folder / "config.json").exists():
        raise UserError(f"No run with id {run_id!r} on this server: check the link, or start a new run.")
    return folder


def run_ids(root: Path) -> list[str]:
    """Every run folder under `root`, oldest first (ids start with their UTC creation time)."""
    if not Path(root).is_dir():
        return []
    return sorted(p.name for p in Path(root).iterdir() if valid_run_id(p.name) and (p / "config.json").exists())


def log_tail(run_dir: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of worker.log (progress bars rewrite one line with '\\r': keep the latest)."""
    try:
        with open(Path(run_dir) / "worker.log", "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64_000))
            text = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    tail: deque[str] = deque(maxlen=lines)
    for line in text.splitlines():
        line = line.rsplit("\r", 1)[-1].rstrip()
        if line:
            tail.append(line)
    return list(tail)


def latest_metrics(run_dir: Path) -> dict:
    """The newest train row and the newest eval row (for /run_status and the history table)."""
    rows, _ = read_metrics(run_dir)
    latest: dict = {}
    for row in rows:
        latest[row.get("kind", "train")] = row
    return latest


def perplexity_before_after(run_dir: Path) -> tuple[float | None, float | None]:
    summary = read_json(Path(run_dir) / "summary.json")
    if "eval_perplexity_before" in summary:
        return summary.get("eval_perplexity_before"), summary.get("eval_perplexity_after")
    evals = [r for r in read_metrics(run_dir)[0] if r.get("kind") == "eval"]
    before = next((r["eval_perplexity"] for r in evals if r.get("step") == 0), None)
    after = evals[-1]["eval_perplexity"] if evals and evals[-1].get("step", 0) > 0 else None
    return before, after


def history_row(run_dir: Path) -> dict:
    """One line of the runs table: what a user scans to find a run."""
    config = read_json(run_dir / "config.json")
    status = read_status(run_dir)
    before, after = perplexity_before_after(run_dir)
    return {
        "run_id": run_dir.name,
        "model": config.get("model", "?"),
        "method": config.get("method", "?"),
        "state": status.get("state", "unknown"),
        "step": status.get("step", 0),
        "total_steps": status.get("total_steps"),
        "perplexity_before": before,
        "perplexity_after": after,
        "created_at": config.get("created_at"),
    }


def is_final(status: dict) -> bool:
    return status.get("state") in FINAL_STATES


def latest_checkpoint_step(run_dir: Path) -> int | None:
    steps = []
    for p in (Path(run_dir) / "checkpoints").glob("step-*"):
        try:
            steps.append(int(p.name.split("-", 1)[1]))
        except ValueError:
            continue
    return max(steps) if steps else None


def corpus_ids_in_use(root: Path | None = None) -> set[str]:
    """Stored corpora that some run's config refers to: the corpus store never removes these."""
    root = Path(root) if root else runs_dir()
    used = set()
    for rid in run_ids(root):
        corpus = read_json(root / rid / "config.json").get("corpus")
        if isinstance(corpus, dict) and corpus.get("source") == "stored" and isinstance(corpus.get("corpus_id"), str):
            used.add(corpus["corpus_id"])
    return used
