"""Checkpoints of a run: a loadable model folder (full: weights + tokenizer; LoRA: the
adapter + tokenizer) and a state file with the rest of what resuming needs.

Where they live is engine.run_folder.RunFolder's business: it writes a checkpoint into a
hidden temporary folder and renames it into place, so a worker killed mid-save leaves the
previous checkpoint as the newest complete one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from engine.run_folder import RunFolder

KEEP = 2  # the newest two: one to resume from, one spare should the newest be damaged


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first."""
    return RunFolder(run_dir).checkpoints()


def latest_checkpoint(run_dir: Path) -> Path | None:
    return RunFolder(run_dir).latest_checkpoint()


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
    """Write the checkpoint of `step` atomically and drop all but the newest KEEP checkpoints."""
    folder = RunFolder(run_dir)

    def write(path: Path) -> None:
        model.save_pretrained(RunFolder.checkpoint_model(path))
        tokenizer.save_pretrained(RunFolder.checkpoint_model(path))
        torch.save({**state, "step": step, "rng": rng_state()}, RunFolder.checkpoint_state(path))

    saved = folder.write_checkpoint(step, write)
    for _, old in folder.checkpoints()[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return saved


def load_state(checkpoint: Path) -> dict:
    # Our own file: optimizer/scheduler state dicts, numbers and RNG byte tensors only.
    return torch.load(RunFolder.checkpoint_state(checkpoint), map_location="cpu", weights_only=True)
