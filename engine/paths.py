"""Where runs and caches live.

A Space's own disk is wiped on restart; a storage bucket mounted at /data survives it,
so runs go there when it is writable (DESIGN: treat /data as optional).
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path


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
