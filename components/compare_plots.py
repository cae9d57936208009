"""Figures and HTML for the Compare tab: top-k bars, side-by-side columns, perplexity, downstream."""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.plots import plot_text
from engine.compare import Column, CompareResult, FillMaskResult, human_bytes

HIGHLIGHT = 0.01  # a probability change smaller than this is noise, not a move worth colouring


def probability_text(p: float) -> str:
    """0.123 for a likely token, 0.0007 (not 0.001) for an unlikely one: two significant digits
    below 1%, as the Predictions table's four decimals show it."""
    return f"{p:.3f}" if p >= 0.0095 else f"{p:.2g}"


def fill_mask_figure(result: FillMaskResult, title: str = "") -> go.Figure:
    """One horizontal bar chart per mask, the most likely token on top."""
    n = len(result.masks)
    fig = make_subplots(rows=1, cols=n, subplot_titles=[f"mask {i + 1}" for i in range(n)] if n > 1 else None,
                        horizontal_spacing=0.12 if n > 1 else 0.2)
    for i, preds in enumerate(result.masks, 1):
        fig.add_trace(go.Bar(
            x=[p.probability for p in preds][::-1], y=[f"{plot_text(p.token)} " for p in preds][::-1],
            orientation="h", text=[probability_text(p.probability) for p in preds][::-1], textposition="auto",
            hovertext=[plot_text(p.sequence) for p in preds][::-1], hoverinfo="text+x", showlegend=False,
        ), row=1, col=i)
        fig.update_xaxes(title_text="probability", rangemode="tozero", tickformat=".2~g", row=1, col=i)  # not 700μ
    height = 140 + 26 * max((len(p) for p in result.masks), default=5)
    fig.update_layout(title=plot_text(title) if title else None, height=height,
                      margin=dict(l=10, r=10, t=60 if title else 30, b=40))
    return fig


def _bar(p: float) -> str:
    width = max(1, int(round(p * 100)))
    return f'<span class="mlm-bar" style="display:inline-block;height:8px;width:{width}px;background:#6b8cce"></span>'


def _column_html(col: Column) -> str:
    ups = {(m.mask, m.token): m.change for m in col.moves if m.change >= HIGHLIGHT}
    downs = [m for m in col.moves if m.change <= -HIGHLIGHT]
    memory = human_bytes(col.memory_bytes)
    kind = "LoRA adapter (shares the base)" if col.kind == "lora" else "full model"
    box = "flex:1;min-width:200px;border:1px solid #ccc;border-radius:6px;padding:8px"
    parts = [f'<div class="mlm-col" style="{box}">',
             f"<b>{html.escape(col.label)}</b><br><small>{kind}, {memory} in memory</small>"]
    if not col.head_trained:
        parts.append('<br><small style="color:#b45309">MLM head untrained: random guesses</small>')
    for m, preds in enumerate(col.result.masks, 1):
        parts.append(f'<div style="margin-top:6px"><i>mask {m}</i><ol style="margin:2px 0 0 18px;padding:0">')
        for p in preds:
            change = ups.get((m, p.token))
            style = ' style="background:#d1fae5"' if change is not None else ""
            delta = f" <small>(+{change:.2f})</small>" if change is not None else ""
            shown = probability_text(p.probability)
            parts.append(f"<li{style}>{html.escape(p.token)} {shown} {_bar(p.probability)}{delta}</li>")
        parts.append("</ol>")
        fell = [d for d in downs if d.mask == m]
        if fell:
            items = ", ".join(f"{html.escape(d.token)} {d.change:+.2f}" for d in fell)
            parts.append(f'<small style="color:#b91c1c">fell: {items}</small>')
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


def columns_html(result: CompareResult) -> str:
    """The models side by side; green rows rose most against the base, red notes fell most."""
    cols = "".join(_column_html(c) for c in result.columns)
    head = f"<p><code>{html.escape(result.text)}</code></p>"
    return f'{head}<div class="mlm-compare" style="display:flex;gap:10px;flex-wrap:wrap">{cols}</div>'


def perplexity_figure(frame: pd.DataFrame) -> go.Figure:
    data = frame.dropna(subset=["perplexity"]) if "perplexity" in frame else frame.iloc[0:0]
    fig = go.Figure(go.Bar(x=[plot_text(m) for m in data.get("model", [])], y=data.get("perplexity", []),
                           text=[f"{v:,.1f}" for v in data.get("perplexity", [])], textposition="auto"))
    fig.update_layout(title="Perplexity on the same eval set (lower is better)", yaxis_title="perplexity",
                      yaxis_type="log", height=320, margin=dict(l=10, r=10, t=50, b=40))
    return fig


def downstream_figure(frame: pd.DataFrame) -> go.Figure:
    fig = go.Figure(go.Bar(
        x=[plot_text(m) for m in frame.get("model", [])], y=frame.get("accuracy_mean", []),
        error_y=dict(type="data", array=list(frame.get("accuracy_std", []))),
        text=[f"{m:.3f} ± {s:.3f}" for m, s in zip(frame.get("accuracy_mean", []), frame.get("accuracy_std", []))],
        textposition="auto",
    ))
    fig.update_layout(title="Sentiment accuracy on frozen features (mean ± std over seeds)",
                      yaxis_title="test accuracy", yaxis_range=[0, 1], height=320,
                      margin=dict(l=10, r=10, t=50, b=40))
    return fig
