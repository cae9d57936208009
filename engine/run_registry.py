"""Read-only views of the run folders on disk, and the small facts jobs needs about them.

Everything here works from the files alone (docs/interfaces.md: config.json, status.json,
owner.json, metrics.jsonl, summary.json, worker.log), so a freshly started server sees
exactly what an earlier one left behind.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections import deque
from pathlib import Path

from engine.errors import UserError
from engine.paths import valid_run_id
from engine.run_files import FINAL_STATES, read_json, read_metrics, read_status, write_json_atomic

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


# ---------------------------------------------------------------- owners


def owner_hash(token: str) -> str:
    """Only a hash of the browser's owner token is stored, so the runs folder leaks no tokens."""
    return hashlib.sha256(("mlm-studio-owner:" + token).encode()).hexdigest()


def write_owner(run_dir: Path, token: str) -> None:
    write_json_atomic(Path(run_dir) / "owner.json", {"owner": owner_hash(token)})


def is_owner(run_dir: Path, token: str | None) -> bool:
    if not token:
        return False
    stored = read_json(Path(run_dir) / "owner.json").get("owner", "")
    return bool(stored) and hmac.compare_digest(stored, owner_hash(token))


def is_admin(token: str | None) -> bool:
    admin = os.environ.get("MLM_ADMIN_TOKEN", "")
    return bool(admin) and bool(token) and hmac.compare_digest(admin.encode(), str(token).encode())


def browser_secret(root: Path) -> str:
    """A per-installation key for gr.BrowserState, kept next to the runs so that the owner
    token a browser stored survives a server restart exactly as long as the runs do."""
    path = Path(root) / ".browser_secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        secret = secrets.token_hex(16)
        tmp = path.with_name(f".browser_secret.{os.getpid()}.tmp")
        tmp.write_text(secret)
        try:
            os.link(tmp, path)  # atomic create-if-absent: two processes agree on one secret
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        return path.read_text().strip()
