"""Plotly figure for the Costs tab: peak memory by part, full fine-tuning next to LoRA."""

from __future__ import annotations

import plotly.graph_objects as go

from components.plots import plot_text
from engine.numbers import GIB

PART_STYLE = {  # part -> (label, colour)
    "weights": ("weights (+ autocast copies)", "#64748b"),
    "gradients": ("gradients", "#f59e0b"),
    "optimizer": ("optimizer state", "#ef4444"),
    "activations": ("activations saved for backward", "#3b82f6"),
    "logits": ("logits / loss buffers", "#8b5cf6"),
    "margin": ("margin (workspaces, cast copies, allocator rounding)", "#a3a3a3"),
    "overhead": ("framework overhead", "#cbd5e1"),
}


def memory_bars(estimate: dict) -> go.Figure:
    """Stacked bars of what is alive at each method's peak, with the GPU's memory as a line."""
    sides = [estimate["full"], estimate["lora"]]
    names = ["Full fine-tuning", "LoRA"]
    fig = go.Figure()
    for part, (label, colour) in PART_STYLE.items():
        values = [s["memory"]["parts"][part] / GIB for s in sides]
        fig.add_bar(
            x=names, y=values, name=label, marker_color=colour,
            hovertemplate=f"{label}: %{{y:.2f}} GiB<extra>%{{x}}</extra>",
        )
    for name, side in zip(names, sides):
        fig.add_annotation(x=name, y=side["memory"]["total"] / GIB, yshift=12, showarrow=False,
                           text=f"{side['memory']['total'] / GIB:.2f} GiB")
    gpu = estimate["gpu"]
    fig.add_hline(y=gpu["memory_gib"], line_dash="dash", line_color="#111",
                  annotation_text=f"{plot_text(gpu['name'])}: {gpu['memory_gib']:g} GiB",
                  annotation_position="top left")
    top = max(gpu["memory_gib"], *(s["memory"]["total"] / GIB for s in sides))
    fig.update_layout(
        barmode="stack", title="Peak GPU memory by part (at each method's peak moment)",
        yaxis_title="GiB", yaxis_range=[0, top * 1.15], height=420, margin=dict(l=50, r=20, t=60, b=40),
        legend=dict(orientation="h", yanchor="top", y=-0.08, xanchor="left", x=0),
    )
    return fig
