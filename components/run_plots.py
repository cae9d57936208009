"""Plotly figures and small HTML views of a training run, built from metrics.jsonl rows.

Pure functions of plain rows/dicts (no gradio), so they are cheap to test and the Train
tab can rebuild them on every poll that brought new rows.
"""

from __future__ import annotations

import html
import time

import pandas as pd
import plotly.graph_objects as go

SMOOTHING = 0.2  # EMA weight of the newest point: smooth enough to see the trend through batch noise
X_TITLES = {"step": "optimizer step", "epoch": "epoch"}
COLOURS = {"raw": "rgba(249, 115, 22, 0.35)", "smooth": "#ea580c", "eval": "#2563eb", "lr": "#16a34a", "tps": "#7c3aed"}


def frames(rows: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train rows, eval rows) as frames; rows of a resumed run are unique by step already."""
    frame = pd.DataFrame(rows)
    if frame.empty or "kind" not in frame:
        return pd.DataFrame(), pd.DataFrame()
    return frame[frame["kind"] == "train"].reset_index(drop=True), frame[frame["kind"] == "eval"].reset_index(drop=True)


def _figure(title: str, x: str, y_title: str, uirevision: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title={"text": title, "font": {"size": 14}}, height=280, margin={"l": 50, "r": 10, "t": 40, "b": 40},
        xaxis_title=X_TITLES.get(x, x), yaxis_title=y_title,
        legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"},
        # No named template: it would add ~6 KB to every figure sent on every poll.
        template=None, plot_bgcolor="white", paper_bgcolor="white", uirevision=uirevision,  # uirevision keeps zoom
    )
    fig.update_xaxes(gridcolor="#eeeeee", zeroline=False)
    fig.update_yaxes(gridcolor="#eeeeee", zeroline=False, automargin=True)  # long tick labels push the title out
    return fig


def _waiting(fig: go.Figure, text: str = "waiting for the first logged step") -> go.Figure:
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5, font={"color": "#6b7280"})
    return fig


def loss_figure(train: pd.DataFrame, x: str = "step") -> go.Figure:
    fig = _figure("Training loss", x, "masked-LM loss", "loss")
    if train.empty or "loss" not in train:
        return _waiting(fig)
    smooth = train["loss"].ewm(alpha=SMOOTHING).mean()  # pandas' bias-corrected EMA
    fig.add_scatter(x=train[x], y=train["loss"], name="loss", mode="lines", line={"color": COLOURS["raw"]})
    fig.add_scatter(x=train[x], y=smooth, name="smoothed (EMA)", mode="lines",
                    line={"color": COLOURS["smooth"], "width": 2.5})
    return fig


def perplexity_figure(evals: pd.DataFrame, x: str = "step") -> go.Figure:
    fig = _figure("Eval perplexity (fixed masked eval set)", x, "perplexity", "ppl")
    fig.update_yaxes(tickformat=",.4~g")  # 2,064 rather than 2,066.495 when the range is narrow
    if evals.empty:
        return _waiting(fig, "waiting for the first evaluation")
    if "eval_perplexity" not in evals:  # a classifier run (kind "classify"): its evaluations are on the Classify tab
        return _waiting(fig, "a classifier run: accuracy and F1 are on the Classify tab")
    fig.add_scatter(x=evals[x], y=evals["eval_perplexity"], name="eval perplexity", mode="lines+markers",
                    line={"color": COLOURS["eval"]})
    if len(evals) and evals["eval_perplexity"].max() / max(evals["eval_perplexity"].min(), 1e-9) > 50:
        fig.update_yaxes(type="log")  # an untrained head starts in the tens of thousands
    return fig


def lr_figure(train: pd.DataFrame, x: str = "step") -> go.Figure:
    fig = _figure("Learning rate", x, "learning rate", "lr")
    if train.empty or "lr" not in train:
        return _waiting(fig)
    fig.add_scatter(x=train[x], y=train["lr"], name="learning rate", mode="lines", line={"color": COLOURS["lr"]})
    fig.update_yaxes(exponentformat="e")
    return fig


def throughput_figure(train: pd.DataFrame, x: str = "step") -> go.Figure:
    fig = _figure("Throughput", x, "tokens / s", "tps")
    if train.empty or "tokens_per_s" not in train:
        return _waiting(fig)
    fig.add_scatter(x=train[x], y=train["tokens_per_s"], name="tokens/s", mode="lines", line={"color": COLOURS["tps"]})
    return fig


def figures(rows: list[dict], x: str = "step", finished: bool = False) -> tuple[go.Figure, go.Figure, go.Figure,
                                                                               go.Figure]:
    """Loss, perplexity, learning rate and tokens/s against `x` ("step" or "epoch"). A finished run
    without a single row lost its metrics file: the charts say so instead of waiting forever."""
    x = x if x in X_TITLES else "step"
    if finished and not rows:
        lost = "this run has no recorded metrics (its metrics.jsonl is missing or empty)"
        return tuple(_waiting(_figure(t, x, y, t), lost) for t, y in
                     (("Training loss", "masked-LM loss"), ("Eval perplexity", "perplexity"),
                      ("Learning rate", "learning rate"), ("Throughput", "tokens / s")))
    train, evals = frames(rows)
    return loss_figure(train, x), perplexity_figure(evals, x), lr_figure(train, x), throughput_figure(train, x)


# ---------------------------------------------------------------- progress and tables


def clock(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def eta_seconds(status: dict, now: float | None = None) -> float | None:
    """Remaining time from the worker's measured steps/s, else from elapsed time and steps done."""
    step, total = status.get("step") or 0, status.get("total_steps")
    if not total or status.get("state") != "running" or step >= total:
        return None
    rate = status.get("steps_per_s")
    if not rate and step and status.get("started_at"):
        rate = step / max((now or time.time()) - status["started_at"], 1e-6)
    return (total - step) / rate if rate else None


def progress_html(status: dict, now: float | None = None) -> str:
    """A progress bar with step, percentage, elapsed time and ETA (and data-* for scripts and tests)."""
    now = now or time.time()
    state = status.get("state", "")
    step, total = int(status.get("step") or 0), status.get("total_steps")
    done = state == "completed"
    fraction = 1.0 if done else (step / total if total else 0.0)
    started, finished = status.get("started_at"), status.get("finished_at")
    # elapsed_before: earlier attempts of a resumed run (engine/runs/record.py)
    elapsed = ((finished or now) - started + float(status.get("elapsed_before") or 0)) if started else None
    parts = [f"step {step:,} / {total:,}" if total else f"step {step:,}", f"{fraction:.0%}",
             f"elapsed {clock(elapsed)}"]
    eta = eta_seconds(status, now)
    if eta is not None:
        parts.append(f"ETA {clock(eta)}")
    if state == "queued" and status.get("queue_position"):
        parts.append(f"position {status['queue_position']} in the queue")
    colour = {"failed": "#dc2626", "interrupted": "#d97706", "cancelled": "#6b7280"}.get(state, "#ea580c")
    return (
        f'<div id="train-progress" data-state="{html.escape(state)}" data-step="{step}" data-total="{total or 0}">'
        f'<div style="background:#e5e7eb;border-radius:6px;height:14px;overflow:hidden">'
        f'<div style="width:{fraction * 100:.1f}%;background:{colour};height:100%;transition:width .4s"></div></div>'
        f'<div style="font-size:0.9em;margin-top:4px"><b>{html.escape(state or "no run")}</b> · '
        f'{html.escape(" · ".join(parts))}</div></div>'
    )
