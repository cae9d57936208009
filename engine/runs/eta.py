"""How long will this run take? An estimate shown before Start, and kept to compare with the actual.

The basis, best first (and the estimate says which it used):
1. earlier completed runs on this machine (same runs folder, same device kind) with the same model,
   method, batch and chunk size: their measured tokens/s;
2. earlier completed runs of other settings on this machine: the FLOP rate they reached
   (tokens/s x the cost model's FLOPs per token), applied to this run's FLOPs per token;
3. the cost model alone: on a GPU its preset at the default utilisation, on the CPU the rate this
   project's own CPU benchmark measured (bench/train_throughput.py), scaled by the number of cores.
Evaluation passes are counted as forward-only (a third of a training step's FLOPs per token).
"""

from __future__ import annotations

import os
import statistics
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from engine.errors import UserError, plain
from engine.hardware import planned_steps
from engine.run_folder import RunFolder

# bench/train_throughput.py on 2 cores (README): bundled MiniLM, full, fp32, batch 16 x 128, 15.7 samples/s.
CPU_BENCH = {"model": "bundled", "method": "full", "batch_size": 16, "seq_len": 128, "samples_per_s": 15.7,
             "cores": 2}
EVAL_SHARE = 1 / 3  # a forward pass is about a third of forward + backward
# Starting a worker, loading the model and the corpus, saving the final model: seconds that do not scale
# with the steps (a tiny run is mostly this). Measured from earlier runs when there are any.
DEFAULT_OVERHEAD_S = {"cpu": 10.0, "cuda": 30.0}


@dataclass
class Eta:
    steps: int | None
    tokens: int | None
    seconds: float | None
    tokens_per_s: float | None
    basis: str  # "same settings" | "this machine, scaled by FLOPs" | "cost model"
    explanation: str
    overhead_s: float = 0.0  # included in seconds: start-up and saving, measured by earlier runs or a default

    def as_dict(self) -> dict:
        return asdict(self)


def _precision(cfg, device: str) -> str:
    if device == "cpu":
        return "fp32"
    return {"fp16": "fp16", "bf16": "bf16", "fp32": "fp32"}.get(cfg.get("precision", "auto"), "fp16")


@lru_cache(maxsize=64)  # a cost-model trace per setting; the form asks again on every change
def flops_per_token(model: str, method: str, batch: int, seq: int, device: str, precision: str) -> float | None:
    """The cost model's training FLOPs per token for these settings (None when it cannot tell)."""
    from engine.costs.calculator import CostSettings, estimate

    try:
        est = estimate(CostSettings(model=model, method=method, batch_size=batch, seq_len=seq,
                                    precision=precision, device=device if device == "cpu" else "cuda"))
    except (UserError, OSError, ValueError):
        return None
    return float(est[method]["flops"]["per_token"])


def _finished(root: Path | None, device: str) -> list[dict]:
    """Completed runs on this device kind: their config and measured tokens/s."""
    rows = []
    for run in RunFolder.all(root):
        summary = run.summary()
        if summary.get("device") != device or not summary.get("tokens_per_s") or summary.get("stopped"):
            continue
        rows.append({"config": run.config(), "tokens_per_s": float(summary["tokens_per_s"]),
                     "overhead_s": _overhead(run.status(), summary)})
    return rows


def _overhead(status: dict, summary: dict) -> float | None:
    """Seconds of a finished run outside its training steps (start-up, evaluation, saving)."""
    started, finished = status.get("started_at"), status.get("finished_at")
    if started is None or finished is None or status.get("elapsed_before"):
        return None  # unknown, or a resumed run (several start-ups)
    return max(0.0, finished - started - float(summary.get("train_seconds") or 0.0))


def overhead(device: str, root: Path | None = None) -> float:
    measured = [r["overhead_s"] for r in _finished(root, device) if r["overhead_s"] is not None]
    return statistics.median(measured[-5:]) if measured else DEFAULT_OVERHEAD_S.get(device, 30.0)


def _same(a: dict, b: dict) -> bool:
    keys = ("model", "method", "batch_size", "chunk_size")
    return all(a.get(k) == b.get(k) for k in keys)


def rate(cfg: dict, device: str, root: Path | None = None) -> tuple[float | None, str, str]:
    """(tokens/s, basis, explanation) for a config dict on this machine."""
    runs = _finished(root, device)
    same = [r["tokens_per_s"] for r in runs if _same(r["config"], cfg)]
    if same:
        return statistics.median(same), "same settings", f"measured by {len(same)} earlier run(s) with these settings"
    prec = _precision(cfg, device)
    mine = flops_per_token(cfg.get("model", "bundled"), cfg.get("method", "full"), cfg.get("batch_size", 16),
                           cfg.get("chunk_size", 128), device, prec)
    if mine:
        flop_rates = []
        for r in runs[-5:]:  # the newest few: the machine may have changed
            c = r["config"]
            theirs = flops_per_token(c.get("model", "bundled"), c.get("method", "full"), c.get("batch_size", 16),
                                     c.get("chunk_size", 128), device, _precision(c, device))
            if theirs:
                flop_rates.append(r["tokens_per_s"] * theirs)
        if flop_rates:
            return (statistics.median(flop_rates) / mine, "this machine, scaled by FLOPs",
                    f"from {len(flop_rates)} earlier run(s) of other settings on this machine, "
                    "scaled by FLOPs per token")
        return _model_rate(mine, device, prec)
    return None, "none", f"no earlier run used these settings, and {_why_no_estimate(cfg, device)}"


def _why_no_estimate(cfg: dict, device: str) -> str:
    """Why the cost model gave no FLOPs for a config: its own message (a chunk past the model's
    maximum reads as that, not as an unknown model)."""
    from engine.costs.calculator import CostSettings, estimate

    try:
        estimate(CostSettings(model=cfg.get("model", "bundled"), method=cfg.get("method", "full"),
                              batch_size=cfg.get("batch_size", 16), seq_len=cfg.get("chunk_size", 128),
                              precision=_precision(cfg, device), device=device if device == "cpu" else "cuda"))
    except (UserError, OSError, ValueError) as exc:
        first = plain(exc).split("\n")[0].rstrip(".")  # a Hub error goes on with advice for developers
        return f"the cost model cannot estimate them: {first}"
    return "the cost model cannot estimate them"


def _model_rate(mine: float, device: str, precision: str) -> tuple[float | None, str, str]:
    if device == "cpu":
        b = CPU_BENCH
        ref = flops_per_token(b["model"], b["method"], b["batch_size"], b["seq_len"], "cpu", "fp32")
        if not ref:
            return None, "none", "no earlier run on this machine"
        cores = os.cpu_count() or b["cores"]
        per_s = b["samples_per_s"] * b["seq_len"] * ref * cores / b["cores"]
        return (per_s / mine, "cost model",
                f"no earlier run on this machine: the project's CPU benchmark ({b['samples_per_s']} samples/s "
                f"on {b['cores']} cores), scaled to {cores} cores and by FLOPs per token")
    from engine.costs.flops import DEFAULT_UTILISATION
    from engine.costs.gpus import DEFAULT_GPU, preset

    gpu = preset(DEFAULT_GPU)
    per_s = gpu.peak_flops(precision) * DEFAULT_UTILISATION
    return (per_s / mine, "cost model",
            f"no earlier run on this machine: the cost model's {gpu.name} at {DEFAULT_UTILISATION:.0%} of its peak")


def estimate(cfg, device: str = "cpu", root: Path | None = None, train_chunks: int | None = None) -> Eta:
    """Optimizer steps, tokens and seconds for a TrainConfig (or its dict) before it starts."""
    raw = cfg if isinstance(cfg, dict) else cfg.to_dict()
    steps = planned_steps(_Shim(raw, train_chunks))
    per_step = int(raw.get("batch_size", 16)) * max(int(raw.get("grad_accum_steps", 1)), 1)
    chunk = int(raw.get("chunk_size", 128))
    tokens = steps * per_step * chunk if steps else None
    tps, basis, why = rate(raw, device, root)
    seconds = None
    if tokens and tps:
        evals = 2 + (steps // raw["eval_every"] if raw.get("eval_every") else 0)
        eval_tokens = evals * int(raw.get("test_size") or 0) * chunk * EVAL_SHARE
        seconds = (tokens + eval_tokens) / tps
    extra = overhead(device, root) if seconds is not None else 0.0
    return Eta(steps, tokens, seconds + extra if seconds is not None else None, tps, basis, why, extra)


class _Shim:
    """The attributes planned_steps reads, from a config dict (train_size 0 = the corpus's chunk count)."""

    def __init__(self, raw: dict, train_chunks: int | None):
        self.max_steps = int(raw.get("max_steps") or 0)
        self.train_size = int(raw.get("train_size") or 0) or int(train_chunks or 0)
        self.batch_size = int(raw.get("batch_size", 16))
        self.grad_accum_steps = int(raw.get("grad_accum_steps", 1))
        self.epochs = float(raw.get("epochs", 1))


def describe(eta: Eta) -> str:
    """One line for the Train form: steps, tokens, duration and its basis."""
    if not eta.steps:
        return "Steps unknown until the corpus is chunked (training size 'all' and no step limit)."
    text = f"{eta.steps:,} optimizer steps, {eta.tokens:,} tokens"
    if eta.seconds is None:
        return text + f"; duration unknown: {eta.explanation}."
    return text + (f"; about {_duration(eta.seconds)}, {_duration(eta.overhead_s)} of it start-up and saving "
                   f"({eta.explanation}).")


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
