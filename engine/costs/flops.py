"""FLOPs per token and per epoch, and what an epoch costs in time and money.

The replay counts matmul FLOPs op by op: forward 2·in·out per row for every Linear;
backward 2·in·out for the input gradient when something below trains and 2·in·out for
the weight gradient when the weight trains. That is the "6N" rule for full fine-tuning,
and about 4N for LoRA (no weight gradients for frozen layers). Attention's score and
context matmuls and the MLM head (at masked rows only, or every row) are counted apart
so their shares can be shown. Time = FLOPs / (peak FLOP/s x utilisation).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from engine.costs.arch import Arch
from engine.costs.gpus import GpuPreset
from engine.costs.trace import StepShape, Trace

DEFAULT_UTILISATION = 0.35  # share of peak that BERT-sized mixed-precision training typically reaches


@dataclass
class FlopsEstimate:
    per_token_forward: float
    per_token_backward: float  # includes the re-run forward under gradient checkpointing
    per_token: float
    six_n_per_token: float  # the 6N rule of thumb, N = weights multiplied per token
    attention_per_token: float
    head_per_token: float
    head_share: float
    tokens_per_epoch: int
    steps_per_epoch: int
    per_epoch: float

    def as_dict(self) -> dict:
        return asdict(self)


def estimate_flops(trace: Trace, arch: Arch, shape: StepShape, tokens_per_epoch: int) -> FlopsEstimate:
    tokens_per_step = shape.batch * shape.seq
    fwd = trace.flops_forward / tokens_per_step
    bwd = (trace.flops_backward + trace.flops_recompute) / tokens_per_step
    total = fwd + bwd
    steps = math.ceil(tokens_per_epoch / tokens_per_step) if tokens_per_epoch else 0
    head = trace.head_flops / tokens_per_step
    return FlopsEstimate(
        per_token_forward=fwd,
        per_token_backward=bwd,
        per_token=total,
        six_n_per_token=6 * matmul_weights_per_token(arch, shape),
        attention_per_token=trace.attention_flops / tokens_per_step,
        head_per_token=head,
        head_share=head / total if total else 0.0,
        tokens_per_epoch=int(tokens_per_epoch),
        steps_per_epoch=steps,
        per_epoch=total * tokens_per_epoch,
    )


def matmul_weights_per_token(arch: Arch, shape: StepShape) -> float:
    """N in "6N": encoder Linear weights, plus the head's share of rows it sees."""
    h, i = arch.hidden, arch.intermediate
    encoder = arch.layers * (4 * h * h + 2 * h * i)
    if shape.num_labels:  # a classifier: dense + projection on one row per sequence
        return encoder + (h * h + h * shape.num_labels) / shape.seq
    head_rows = 1.0 if shape.head_all else shape.head_rows / (shape.batch * shape.seq)
    return encoder + head_rows * (h * h + h * arch.vocab)


@dataclass
class TimeEstimate:
    utilisation: float
    utilisation_source: str
    tokens_per_s: float
    seconds_per_epoch: float
    cost_per_epoch: float
    epochs: float
    total_seconds: float
    total_cost: float

    def as_dict(self) -> dict:
        return asdict(self)


def estimate_time(flops: FlopsEstimate, gpu: GpuPreset, precision: str, utilisation: float,
                  epochs: float, source: str = "default") -> TimeEstimate:
    rate = gpu.peak_flops(precision) * utilisation
    seconds = flops.per_epoch / rate if rate else math.inf
    tokens_per_s = rate / flops.per_token if flops.per_token else 0.0
    cost = seconds / 3600 * gpu.price_per_hour
    return TimeEstimate(utilisation, source, tokens_per_s, seconds, cost, epochs, seconds * epochs, cost * epochs)


def implied_utilisation(tokens_per_s: float, flops_per_token: float, gpu: GpuPreset, precision: str) -> float:
    """The share of the GPU's peak a measured run reached: tokens/s x FLOPs/token / peak."""
    peak = gpu.peak_flops(precision)
    return tokens_per_s * flops_per_token / peak if peak else 0.0
