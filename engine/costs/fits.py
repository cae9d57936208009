"""What fits: the largest batch size and sequence length a GPU holds, full and LoRA.

The same arithmetic as the estimate (engine.costs.memory, margin and framework overhead
included), searched over batch size and sequence length: a setting "fits" exactly when the
estimate says so, so the answers here agree with it at their boundary. Memory grows with
both (more rows, more activations), so a bisection finds the boundary in a few dozen
replays of about a millisecond each; the parameter count (a meta model through peft) is
made once per method. Like accelerate's `estimate-memory`, every precision can be shown
side by side for one setting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from engine.costs.activations import trace_step
from engine.costs.arch import Arch, load_arch
from engine.costs.calculator import METHODS, PRECISION_LABELS, CostSettings
from engine.costs.gpus import PRESETS, GpuPreset
from engine.costs.memory import estimate_memory, layer_matrix_weights
from engine.costs.params import ParamReport, count_params

MAX_BATCH = 1 << 16  # the search stops here: "at least 65,536" is answer enough
GIB = 1024**3


def largest(fits: Callable[[int], bool], low: int, high: int) -> int:
    """The largest n in [low, high] with fits(n), for fits true up to a point and false after
    it; 0 when even `low` does not fit."""
    if not fits(low):
        return 0
    if fits(high):
        return high
    good, bad = low, high  # fits(good), not fits(bad)
    while bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if fits(middle) else (good, middle)
    return good


class Sizer:
    """Total memory (the estimate's `total`) of one method at any batch size and length."""

    def __init__(self, settings: CostSettings, method: str, arch: Arch | None = None,
                 params: ParamReport | None = None):
        self.settings = settings
        self.method = method
        self.arch = arch or load_arch(settings.model)
        self.params = params or count_params(self.arch, method, settings.lora_spec())

    def total(self, batch: int, seq: int, precision: str | None = None) -> int:
        s = dataclasses.replace(self.settings, batch_size=batch, seq_len=seq,
                                precision=precision or self.settings.precision)
        shape = s.step_shape()
        dropout = s.lora_dropout if self.method == "lora" else 0.0
        trace = trace_step(self.arch, self.params, shape, dropout)
        return estimate_memory(trace, self.params, shape, self.arch.layers, s.optimizer, s.grad_accum_steps,
                               s.device, layer_matrix_weights(self.arch.hidden, self.arch.intermediate)).total

    def max_batch(self, gpu: GpuPreset, seq: int | None = None, precision: str | None = None) -> int:
        seq = seq or self.settings.seq_len
        return largest(lambda b: self.total(b, seq, precision) <= gpu.memory_bytes, 1, MAX_BATCH)

    def max_seq(self, gpu: GpuPreset, batch: int | None = None, precision: str | None = None) -> int:
        batch = batch or self.settings.batch_size
        return largest(lambda n: self.total(batch, n, precision) <= gpu.memory_bytes, 8, self.arch.max_length)


def sizers(settings: CostSettings) -> dict[str, Sizer]:
    arch = load_arch(settings.model)
    return {m: Sizer(settings, m, arch) for m in METHODS}


def by_gpu(settings: CostSettings, presets: dict[str, GpuPreset] | None = None,
           made: dict[str, Sizer] | None = None) -> list[dict]:
    """One row per GPU preset: the largest batch at the settings' length, and the longest
    sequence at its batch size, for full fine-tuning and LoRA."""
    made = made or sizers(settings)
    rows = []
    for name, gpu in (presets or PRESETS).items():
        row = {"gpu": name, "memory_gib": gpu.memory_gib}
        for method, sizer in made.items():
            row[f"{method}_max_batch"] = sizer.max_batch(gpu)
            row[f"{method}_max_seq"] = sizer.max_seq(gpu)
        rows.append(row)
    return rows


def by_precision(settings: CostSettings, made: dict[str, Sizer] | None = None) -> list[dict]:
    """Every precision side by side for the settings' batch, length and GPU: total memory,
    whether it fits, and the largest batch that would."""
    made = made or sizers(settings)
    gpu = settings.gpu_preset()
    rows = []
    for precision, label in PRECISION_LABELS.items():
        row = {"precision": precision, "label": label}
        for method, sizer in made.items():
            total = sizer.total(settings.batch_size, settings.seq_len, precision)
            row[f"{method}_total_gib"] = total / GIB
            row[f"{method}_fits"] = total <= gpu.memory_bytes
            row[f"{method}_max_batch"] = sizer.max_batch(gpu, precision=precision)
        rows.append(row)
    return rows


def what_fits(settings: CostSettings) -> dict:
    """Both tables, JSON-able, for the Costs tab."""
    s = settings.validated()
    made = sizers(s)
    return {
        "model": s.model, "precision": s.precision, "batch_size": s.batch_size, "seq_len": s.seq_len,
        "gpu": s.gpu_preset().name, "gpu_memory_gib": s.gpu_preset().memory_gib,
        "by_gpu": by_gpu(s, made=made), "by_precision": by_precision(s, made=made),
        "max_batch_searched": MAX_BATCH,
    }


def settings_from_estimate(e: dict) -> CostSettings:
    """The settings an estimate (estimate()'s dict) was made with, its GPU's edited memory
    included: the Costs tab finds what fits for the estimate on screen."""
    raw = {k: v for k, v in e["settings"].items() if k != "calibration_run"}
    return CostSettings.from_dict({**raw, "gpu": e["gpu"]["name"], "gpu_memory_gib": e["gpu"]["memory_gib"]})
