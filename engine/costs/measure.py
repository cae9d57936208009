"""Measure what a real training step keeps, to check the estimate against (tests and bench/).

`saved_bytes` counts the tensors autograd saves for backward, through
torch.autograd.graph.saved_tensors_hooks: each storage once (views of one tensor share
it), parameters and buffers excluded (they exist whether or not we train).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch


@dataclass
class Measured:
    saved_bytes: int  # activations + autocast weight copies + logits kept for backward
    loss: float
    masked_rows: int


def make_batch(batch: int, seq: int, vocab: int, mlm_probability: float, seed: int = 0, device="cpu") -> dict:
    """Random ids with about mlm_probability of positions labelled (at least one)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (batch, seq), generator=g)
    picked = torch.rand(batch, seq, generator=g) < mlm_probability
    picked[0, 0] = True
    labels = torch.where(picked, ids, torch.full_like(ids, -100))
    mask = torch.ones(batch, seq, dtype=torch.long)
    return {k: v.to(device) for k, v in {"input_ids": ids, "attention_mask": mask, "labels": labels}.items()}


def autocast_context(precision: str, device: str):
    if precision in ("fp16", "bf16"):
        return torch.autocast(device, dtype=torch.float16 if precision == "fp16" else torch.bfloat16)
    return nullcontext()


def step_loss(model, batch: dict, head_all: bool):
    """The loss our trainer computes (last layer past attention and head on masked rows) or the
    model's own (every row)."""
    from engine import mlm_head
    from engine.mlm_head import masked_lm_loss, unwrap

    if head_all:
        return model(**batch).loss
    mlm_head.install(unwrap(model).base_model)  # as training does
    loss, _ = masked_lm_loss(model, batch)
    return loss


def saved_bytes(model, batch: dict, head_all: bool, precision: str = "fp32", device: str = "cpu") -> Measured:
    model.train()
    exclude = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in exclude and ptr not in seen:
            seen[ptr] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast_context(precision, device):
        loss = step_loss(model, batch, head_all)
    total = sum(seen.values())
    loss.backward()  # proves the graph is whole; the counted tensors were the ones it needed
    rows = int((batch["labels"] != -100).sum())
    return Measured(total, float(loss.detach()), rows)

