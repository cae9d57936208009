"""Did it pay off? Two arms measured on the same seeds (base vs adapted, full vs LoRA), compared.

Each seed draws its own train/test subsets and head initialisation, and both arms of a
pair share them, so the paired differences cancel the luck of the draw. The 95% interval of
the mean difference uses Student's t with n-1 degrees of freedom (scipy.stats.t): with 3 to
5 seeds the normal 1.96 would claim far more certainty than the seeds give.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from engine.errors import UserError

MIN_SEEDS, MAX_SEEDS = 1, 20


def check_seed_count(n: int) -> int:
    try:
        n = int(n)
    except (TypeError, ValueError):
        raise UserError(f"The number of seeds must be a whole number, got {n!r}.") from None
    if not MIN_SEEDS <= n <= MAX_SEEDS:
        raise UserError(f"Use between {MIN_SEEDS} and {MAX_SEEDS} seeds, got {n}: each seed is one run per arm.")
    return n


def t_quantile(df: int, confidence: float = 0.95) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, df))


def _paired(a, b) -> tuple[list, np.ndarray, np.ndarray]:
    """(seeds, a values, b values), paired by seed for mappings, by position for sequences."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        seeds = sorted(set(a) & set(b))
        return seeds, np.array([a[s] for s in seeds], float), np.array([b[s] for s in seeds], float)
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise UserError(f"The arms have {len(a)} and {len(b)} results: they must be paired seed by seed.")
    return list(range(1, len(a) + 1)), np.array(a, float), np.array(b, float)


def arm_stats(values: np.ndarray, scale: float) -> dict:
    return {"mean": round(float(values.mean()) * scale, 3),
            "std": round(float(values.std(ddof=1)) * scale, 3) if len(values) > 1 else 0.0,
            "values": [round(float(v) * scale, 3) for v in values]}


def paired_payoff(a: Sequence[float] | Mapping, b: Sequence[float] | Mapping,
                  names: tuple[str, str] = ("base", "adapted"), subject: str = "adaptation",
                  scale: float = 100.0) -> dict:
    """Mean ± std per arm, the mean of (b - a) with its 95% t-interval, and a verdict in plain words.

    Values are fractions (accuracy 0.83) shown in points (x `scale`); b is the arm under test.
    """
    seeds, va, vb = _paired(a, b)
    n = check_seed_count(len(seeds))
    diff = (vb - va) * scale
    mean = float(diff.mean())
    half = t_quantile(n - 1) * float(diff.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
    return {
        "n_seeds": n, "seeds": seeds,
        names[0]: arm_stats(va, scale), names[1]: arm_stats(vb, scale),
        "difference": round(mean, 3), "half_width": round(half, 3) if math.isfinite(half) else None,
        "low": round(mean - half, 3) if math.isfinite(half) else None,
        "high": round(mean + half, 3) if math.isfinite(half) else None,
        "verdict": verdict(mean, half, subject),
    }


def verdict(mean: float, half: float, subject: str) -> str:
    if not math.isfinite(half):
        return f"{mean:+.1f} points from one seed: no interval; use 3 or more seeds to tell."
    if mean - half > 0:
        return f"{mean:+.1f} points (±{half:.1f}): {subject} helped"
    if mean + half < 0:
        return f"{mean:+.1f} points (±{half:.1f}): {subject} hurt"
    return f"{mean:+.1f} points (±{half:.1f}): no difference that these seeds can detect"


def plan_payoff(start_model: str, adapted_model: str, seeds: int, full_vs_lora: bool = False,
                template=None) -> list:
    """The ClassifyConfigs to queue: for seeds 1..N, one run per arm (start, adapted) and method.

    `template` (a ClassifyConfig) carries the corpus with its label column and the sizes; for an
    MLM run give its own corpus, so that the classifier's test reviews are the ones that run
    never trained on. Learning rates stay 0 (each method's default) unless the template sets one.
    """
    from engine.training.classify.config import ClassifyConfig

    n = check_seed_count(seeds)
    if not str(start_model).strip() or not str(adapted_model).strip():
        raise UserError("Pick the start model and the adapted model (a finished MLM run).")
    template = template or ClassifyConfig()
    methods = ("full", "lora") if full_vs_lora else (template.method,)
    return [dataclasses.replace(template, model=ref, seed=seed, method=method)
            for seed in range(1, n + 1) for method in methods for ref in (start_model, adapted_model)]


def payoff_from_runs(results: Sequence[tuple], start_model: str, adapted_model: str,
                     metric: str = "accuracy") -> list[dict]:
    """Comparisons from finished runs [(config as ClassifyConfig or dict, summary dict)]:
    adapted vs start per method, and LoRA vs full per model when both methods ran."""
    arms: dict[tuple[str, str], dict[int, float]] = {}
    for cfg, summary in results:
        cfg = cfg if isinstance(cfg, Mapping) else dataclasses.asdict(cfg)
        if summary and not summary.get("stopped") and metric in (summary.get("last_eval") or {}):
            arms.setdefault((cfg["model"], cfg["method"]), {})[int(cfg["seed"])] = summary["last_eval"][metric]
    out = []
    for method in ("full", "lora"):
        a, b = arms.get((start_model, method)), arms.get((adapted_model, method))
        if a and b and set(a) & set(b):
            out.append({"comparison": f"adapted vs start ({method})",
                        **paired_payoff(a, b, ("start", "adapted"), "adaptation")})
    for label, ref in (("start", start_model), ("adapted", adapted_model)):
        a, b = arms.get((ref, "full")), arms.get((ref, "lora"))
        if a and b and set(a) & set(b):
            out.append({"comparison": f"LoRA vs full ({label} model)", **paired_payoff(a, b, ("full", "lora"), "LoRA")})
    return out
