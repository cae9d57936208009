"""The training chunks, their order and masks per epoch, and which batches each step takes.

Masking is transformers' DataCollatorForLanguageModeling (`torch_mask_tokens`, the
collator's own masking routine). We call it on whole blocks of fixed-size chunks
instead of through `collator(rows)`, because that path pads row dicts one by one
with the tokenizer, and our chunks never need padding.

Everything here is a pure function of (seed, epoch, step): the order of epoch e is a
seeded permutation and its masks come from a collator seeded for e, so a resumed run
rebuilds exactly the batches an uninterrupted run would have seen at that step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from engine.errors import UserError
from engine.masking import make_collator
from engine.training.config import TrainConfig

MASK_BLOCK = 512  # rows masked per collator call: whole-word masking builds a rows x len x len array


def derived_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def seeded_collator(tokenizer, cfg: TrainConfig, seed: int):
    """The run's collator with its generator seeded now.

    The collator would seed itself lazily on first call, but only in a process named
    'MainProcess'; in a multiprocessing worker (our jobs worker) it raises instead.
    """
    collator = make_collator(tokenizer, cfg.mlm_probability, cfg.whole_word_mask, seed=seed)
    collator.generator = collator.get_generator(seed)
    return collator


def mask_rows(collator, columns: dict[str, np.ndarray], rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked input_ids and labels (-100 where unmasked) for `rows` of the chunk arrays."""
    inputs, labels = [], []
    for start in range(0, len(rows), MASK_BLOCK):
        block = rows[start:start + MASK_BLOCK]
        ids = torch.from_numpy(np.asarray(columns["input_ids"][block], dtype=np.int64))
        special = torch.from_numpy(np.asarray(columns["special_tokens_mask"][block]).astype(bool))
        offsets = columns["offset_mapping"][block] if collator.whole_word_mask else None
        masked, lab = collator.torch_mask_tokens(ids, special_tokens_mask=special, offset_mapping=offsets)
        inputs.append(masked)
        labels.append(lab)
    return torch.cat(inputs), torch.cat(labels)


def take(columns: dict[str, np.ndarray], index: np.ndarray) -> dict[str, np.ndarray]:
    return {k: np.asarray(v[index]) for k, v in columns.items()}


@dataclass
class StepBatches:
    """Which micro-batches each optimizer step trains on, for this process's shard."""

    columns: dict[str, np.ndarray]
    tokenizer: object
    cfg: TrainConfig
    rank: int = 0
    world: int = 1
    device: torch.device | str = "cpu"

    def __post_init__(self) -> None:
        self.n = len(self.columns["input_ids"])
        self.per_rank = self.n // self.world
        if self.per_rank < 1:
            raise UserError(f"Only {self.n} training chunks for {self.world} processes: use a bigger corpus.")
        self.micro_per_epoch = math.ceil(self.per_rank / self.cfg.batch_size)
        self.steps_per_epoch = math.ceil(self.micro_per_epoch / self.cfg.grad_accum_steps)
        self._epoch: int | None = None
        self.max_masked = 0  # masked tokens in this epoch's fullest micro-batch

    def total_steps(self) -> int:
        if self.cfg.max_steps > 0:
            return self.cfg.max_steps
        return max(1, math.ceil(self.cfg.epochs * self.steps_per_epoch))

    def _masked_epoch(self, epoch: int) -> None:
        """Order and mask every chunk of `epoch` once (dynamic masking: new masks each epoch)."""
        order = np.random.default_rng(derived_seed(self.cfg.seed, 1, epoch)).permutation(self.n)
        collator = seeded_collator(self.tokenizer, self.cfg, derived_seed(self.cfg.seed, 2, epoch))
        inputs, labels = mask_rows(collator, self.columns, order)
        # Every process masks the same epoch and keeps its own rows, so the data a step
        # sees does not depend on how many processes share it.
        shard = slice(self.rank, self.rank + self.world * self.per_rank, self.world)
        # Counted here, on the CPU: the compiled step needs the largest micro-batch's count
        # without asking the device (engine/training/compiled.py).
        masked = (labels[shard] != -100).sum(dim=1)
        self.max_masked = int(max(part.sum() for part in masked.split(self.cfg.batch_size)))
        # One copy per epoch to the device (a few MB) instead of one per step.
        self._inputs, self._labels = inputs[shard].to(self.device), labels[shard].to(self.device)
        self._epoch = epoch

    def for_step(self, step: int) -> tuple[float, list[dict[str, torch.Tensor]]]:
        """(epoch reached after this step, its micro-batches); `step` counts from 1."""
        epoch, k = divmod(step - 1, self.steps_per_epoch)
        if self._epoch != epoch:
            self._masked_epoch(epoch)
        bs, accum = self.cfg.batch_size, self.cfg.grad_accum_steps
        first, last = k * accum, min((k + 1) * accum, self.micro_per_epoch)
        # No attention_mask: chunks are full-length, never padded, so attention covers all.
        batches = [
            {"input_ids": self._inputs[j * bs:(j + 1) * bs], "labels": self._labels[j * bs:(j + 1) * bs]}
            for j in range(first, last)
        ]
        return round(epoch + last / self.micro_per_epoch, 4), batches
