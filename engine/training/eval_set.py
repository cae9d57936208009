"""The fixed eval set of a run, and perplexity over it.

The course evaluates with a collator that draws new masks at every evaluation, so two
perplexities differ by masking noise as well as by training. Here the test chunks are
masked once with the run's seed, saved in the run folder (RunFolder.eval_set_path), and
every evaluation of the run (and the Compare tab's) reads the same masked tokens.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import UserError
from engine.mlm_head import masked_logits
from engine.run_folder import RunFolder
from engine.training.batches import derived_seed, mask_rows, seeded_collator
from engine.training.config import TrainConfig

KEYS = ("input_ids", "attention_mask", "labels")


def build_eval_set(columns: dict[str, np.ndarray], tokenizer, cfg: TrainConfig) -> dict[str, np.ndarray]:
    """Mask the test chunks once with the run's seed; int64 arrays as stored on disk."""
    collator = seeded_collator(tokenizer, cfg, derived_seed(cfg.seed, 3))
    inputs, labels = mask_rows(collator, columns, np.arange(len(columns["input_ids"])))
    return {
        "input_ids": inputs.numpy().astype(np.int64),
        "attention_mask": np.asarray(columns["attention_mask"], dtype=np.int64),
        "labels": labels.numpy().astype(np.int64),
    }


def save_eval_set(run_dir: Path, arrays: dict[str, np.ndarray]) -> None:
    RunFolder(run_dir).write_eval_set(lambda tmp: np.savez(tmp, **{k: arrays[k] for k in KEYS}))


def load_eval_set(path: Path) -> dict[str, np.ndarray]:
    """A run's eval set (`path` is the run folder or the .npz file itself)."""
    path = Path(path)
    if path.is_dir():
        path = RunFolder(path).eval_set_path
    if not path.exists():
        raise UserError(f"No eval set at {path}: the run has not started training yet.")
    with np.load(path) as npz:
        return {k: npz[k] for k in KEYS}


def _device(model) -> torch.device:
    return next(model.parameters()).device


def evaluate(model, eval_arrays: dict[str, np.ndarray], batch_size: int = 32) -> tuple[float, float]:
    """(loss, perplexity) over all masked eval tokens.

    The loss is the mean over tokens, not over batches: summed per batch, divided by the
    number of masked tokens once, so batches with more masks weigh more, as they should.
    """
    labels_all = np.asarray(eval_arrays["labels"])
    if not (labels_all != -100).any():
        raise UserError("The eval set has no masked tokens: use more test chunks or a higher masking probability.")
    device, was_training = _device(model), model.training
    model.eval()
    # Running sums stay on the device: no host sync per batch.
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.int64, device=device)
    try:
        with torch.inference_mode():
            for start in range(0, len(labels_all), batch_size):
                sl = slice(start, start + batch_size)
                ids = torch.as_tensor(eval_arrays["input_ids"][sl], device=device)
                attn = torch.as_tensor(eval_arrays["attention_mask"][sl], device=device)
                labels = torch.as_tensor(labels_all[sl], device=device)
                picked = labels != -100
                logits = masked_logits(model, ids, attn, picked)
                total += F.cross_entropy(logits.float(), labels[picked], reduction="sum").double()
                count += picked.sum()
    finally:
        model.train(was_training)
    loss = float(total) / int(count)
    return loss, math.exp(min(loss, 700.0))  # exp overflows a float past ~709
