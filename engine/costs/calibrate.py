"""Calibration: a finished run's measured peak memory and throughput next to the prediction.

A run folder (engine.run_folder.RunFolder) holds the run's TrainConfig dict and, once it
has finished, a summary with peak_memory_bytes and tokens_per_s. We predict the same
settings, show both, and turn the measured tokens/s into a utilisation of the chosen
GPU's peak, which then prices time and money for both methods.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from engine.architectures import HEAD_TRANSFORM
from engine.costs.flops import DEFAULT_UTILISATION, implied_utilisation
from engine.costs.gpus import GpuPreset
from engine.errors import UserError
from engine.run_folder import RunFolder

_DEVICE_LINE = re.compile(r"device (\S+), mixed precision (\w+)")


def finished_runs(root: Path | None = None) -> list[tuple[str, str]]:
    """(label, run_id) of runs with a summary, newest first, for a dropdown."""
    out = []
    for folder in reversed(RunFolder.all(root)):
        if folder.summary().get("tokens_per_s"):
            cfg = folder.config()
            label = " · ".join([folder.run_id, str(cfg.get("method", "?")), str(cfg.get("model", "?")),
                                f"batch {cfg.get('batch_size', '?')}"])
            out.append((label, folder.run_id))
    return out


def read_run(run_id: str, root: Path | None = None) -> dict:
    """The run's config, summary and the device and precision it trained with."""
    folder = RunFolder.open(run_id, root)  # a malformed id or an unknown run: a UserError saying which
    config, summary = folder.config(), folder.summary()
    if not summary.get("tokens_per_s"):
        raise UserError(f"Run {run_id} has not finished (no summary with tokens/s yet): pick a finished run.")
    device, mixed = _device_and_precision(folder, summary)
    return {"run_id": run_id, "config": config, "summary": summary, "device": device, "mixed_precision": mixed}


def _device_and_precision(folder: RunFolder, summary: dict) -> tuple[str, str]:
    """The summary may name them; else the trainer's start line in the log says 'device X, mixed precision Y'."""
    if summary.get("device"):
        return str(summary["device"]), str(summary.get("mixed_precision", "no"))
    lines = list(folder.status().get("log_tail", [])) + folder.log_head(200)
    for line in lines:
        found = _DEVICE_LINE.search(str(line))
        if found:
            return found.group(1), found.group(2)
    return "unknown", "unknown"


def run_settings(run: dict, base):
    """The estimate settings a run trained with; the GPU and prices stay the user's."""
    cfg = run["config"]
    precision = {"no": "fp32", "fp16": "fp16", "bf16": "bf16"}.get(run["mixed_precision"])
    if precision is None:
        requested = cfg.get("precision", "auto")
        precision = requested if requested in ("fp32", "fp16", "bf16") else "fp32"
    targets = cfg.get("lora_targets") or []
    # A LoRA run that also trained the head transform (TrainConfig.lora_train_head) kept it in full.
    head = HEAD_TRANSFORM.get(run["summary"].get("model_type"), []) if cfg.get("lora_train_head") else []
    return replace(
        base,
        model=cfg.get("model", base.model), method=cfg.get("method", base.method),
        lora_r=cfg.get("lora_r", base.lora_r), lora_alpha=cfg.get("lora_alpha", base.lora_alpha),
        lora_dropout=cfg.get("lora_dropout", base.lora_dropout), lora_targets=targets, modules_to_save=head,
        batch_size=cfg.get("batch_size", base.batch_size), seq_len=cfg.get("chunk_size", base.seq_len),
        precision=precision, optimizer="adamw", grad_checkpointing=False, head="masked",
        mlm_probability=cfg.get("mlm_probability", base.mlm_probability),
        grad_accum_steps=cfg.get("grad_accum_steps", 1), calibration_run="", utilisation=None,
    ).validated()


def calibrate(run_id: str, base, gpu: GpuPreset, predict: Callable) -> dict:
    """Measured next to predicted for the run's own settings, and the utilisation it implies.

    `predict(settings)` is the estimate's one side for those settings: the estimate passes it in,
    so this module never imports the estimate that imports it (no import cycle).
    """
    run = read_run(run_id)
    s = run_settings(run, base)
    side = predict(s)
    measured_tps = float(run["summary"]["tokens_per_s"])
    measured_peak = int(run["summary"].get("peak_memory_bytes") or 0)
    on_cpu = run["device"].startswith("cpu")
    predicted_peak = side["memory"]["peak_allocated"]
    util = implied_utilisation(measured_tps, side["flops"]["per_token"], gpu, s.precision)
    return {
        "run_id": run_id,
        "device": run["device"],
        "settings": {"model": s.model, "method": s.method, "batch_size": s.batch_size, "seq_len": s.seq_len,
                     "precision": s.precision, "lora_r": s.lora_r},
        "measured_peak_memory_bytes": measured_peak,
        "predicted_peak_memory_bytes": predicted_peak,
        "peak_ratio": predicted_peak / measured_peak if measured_peak else None,
        "measured_tokens_per_s": measured_tps,
        "predicted_tokens_per_s": gpu.peak_flops(s.precision) * DEFAULT_UTILISATION / side["flops"]["per_token"],
        "implied_utilisation": util,
        "utilisation_applies": not on_cpu and 0 < util <= 1,
        "note": _note(run["device"], on_cpu, util),
    }


def _note(device: str, on_cpu: bool, util: float) -> str:
    if on_cpu:
        return ("This run trained on the CPU: its peak is the process's resident memory and its speed says "
                "nothing about a GPU, so its utilisation is not applied.")
    if util > 1:
        return "The measured speed is above the chosen GPU's peak: was the run on a faster GPU? Not applied."
    if device == "unknown":
        return "The run does not say which device it used; its utilisation is applied to the chosen GPU."
    return f"Measured on {device}; its utilisation is applied to the chosen GPU."
