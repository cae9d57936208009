"""The training loop's speed-ups, installed by one call: `install(model, device) -> Installed`.

    speedups = cpu_speedups.install(model, accelerator.device)   # before accelerate.prepare

- the last layer past its attention on masked rows only (engine.mlm_head.install): any
  device, same loss and gradients;
- a cheaper dropout (engine.training.cpu_dropout): CPU only, off with MLM_NATIVE_DROPOUT=1;
- malloc that keeps freed pages (engine.training.cpu_allocator): CPU only, process-wide,
  off with MLM_DEFAULT_MALLOC=1.

Nothing happens at import: each part is registered or switched on here, so importing the
training code (the web server does) changes no global state. None of them changes what a
checkpoint or final/ holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from engine import mlm_head
from engine.training import cpu_allocator, cpu_dropout


@dataclass
class Installed:
    """What install() switched on; `uninstall()` gives the model its own dropout back."""

    last_layer: bool
    dropout: dict | None
    allocator: bool

    def uninstall(self) -> None:
        # The subset last layer acts only inside mlm_head's loss, and malloc's setting lasts
        # for the process (see cpu_allocator): only the dropout needs undoing for other uses.
        if self.dropout is not None:
            cpu_dropout.uninstall(self.dropout)
            self.dropout = None


def install(model: nn.Module, device: torch.device | str) -> Installed:
    on_cpu = torch.device(device).type == "cpu"
    last_layer = mlm_head.install(mlm_head.unwrap(model).base_model)  # same loss, less work: see the module
    dropout = cpu_dropout.install(model) if on_cpu and cpu_dropout.wanted() else None
    allocator = cpu_allocator.install() if on_cpu and cpu_allocator.wanted() else False
    return Installed(last_layer, dropout, allocator)
