"""Checkpoints of a run: `checkpoints/step-<N>/` with `model/` and `state.pt`.

`model/` is a loadable model folder (full: weights + tokenizer; LoRA: the adapter +
tokenizer), `state.pt` the rest of what resuming needs. A checkpoint is written into a
hidden temporary folder and renamed into place, so a worker killed mid-save leaves the
previous checkpoint as the newest complete one.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import torch

KEEP = 2  # the newest two: one to resume from, one spare should the newest be damaged
STEP_DIR = re.compile(r"^step-(\d+)$")


def checkpoints_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first."""
    root = checkpoints_dir(run_dir)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = STEP_DIR.match(path.name)
        if match and (path / "state.pt").exists() and (path / "model").is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, step: int, model, tokenizer, state: dict) -> Path:
    """Write step-<step>/ atomically and drop all but the newest KEEP checkpoints."""
    root = checkpoints_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    tmp, final = root / f".step-{step}.tmp", root / f"step-{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp / "model")
    tokenizer.save_pretrained(tmp / "model")
    torch.save({**state, "step": step, "rng": rng_state()}, tmp / "state.pt")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for _, old in list_checkpoints(run_dir)[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_state(checkpoint: Path) -> dict:
    # Our own file: optimizer/scheduler state dicts, numbers and RNG byte tensors only.
    return torch.load(Path(checkpoint) / "state.pt", map_location="cpu", weights_only=True)
