"""The Compare tab's downstream check, seen like the classifier payoff: for each chosen run, the
probe's accuracy against the base's on the same seeds, the paired difference with its 95%
interval and a one-line verdict (engine.compare.payoff computes them; this only lays them out)."""

from __future__ import annotations

import pandas as pd

COLUMNS = ["model", "base (mean ± std)", "run (mean ± std)", "difference (points)", "95% interval", "verdict"]


def _interval(p: dict) -> str:
    return "n/a (one seed)" if p.get("low") is None else f"[{p['low']:+.1f}, {p['high']:+.1f}]"


def payoff_frame(payoffs: list[dict]) -> pd.DataFrame:
    """One row per run: accuracies in points (mean ± std over seeds), the paired difference, the verdict."""
    rows = [[p["model"], f"{p['base']['mean']:.1f} ± {p['base']['std']:.1f}",
             f"{p['run']['mean']:.1f} ± {p['run']['std']:.1f}", f"{p['difference']:+.1f}", _interval(p),
             p["verdict"]] for p in payoffs]
    return pd.DataFrame(rows, columns=COLUMNS)


def verdict_markdown(payoffs: list[dict]) -> str:
    if not payoffs:
        return "Pick one or more finished runs to compare each with the base, seed by seed."
    return "\n".join(f"- **{p['model']}**: {p['verdict']} ({p['n_seeds']} seeds)" for p in payoffs)
