"""AdamW with weight decay only where it belongs, and the linear warmup schedule.

The decay rule is Trainer's own (`Trainer.get_decay_parameter_names`): no decay on
biases and normalisation weights, found by layer type and by name, so DistilBERT's
`sa_layer_norm` is caught as well as BERT's `LayerNorm`.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import get_linear_schedule_with_warmup
from transformers.trainer_pt_utils import get_parameter_names

from engine.training.config import TrainConfig

NO_DECAY_PATTERNS = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups over the trainable parameters: with and without weight decay."""
    decay_names = set(get_parameter_names(model, [nn.LayerNorm], NO_DECAY_PATTERNS))
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (decay if name in decay_names else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    groups = [g for g in param_groups(model, cfg.weight_decay) if g["params"]]
    # The fused kernel (Trainer's default, "adamw_torch_fused") does the same arithmetic in
    # one pass over the parameters instead of several.
    fused = all(p.device.type in ("cpu", "cuda") for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, fused=fused)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    # Warmup longer than the run would never reach the peak rate; cap it at the run.
    warmup = min(cfg.warmup_steps, total_steps)
    return get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
