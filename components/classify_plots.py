"""Plotly figures and markdown of a classifier run, from its metrics.jsonl rows and summary.

Pure functions of plain rows (no gradio), rebuilt by the Classify tab's poll when rows arrive.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.plots import plot_text

EVAL_METRICS = ("accuracy", "precision", "recall", "f1")
COLOURS = {"loss": "#ea580c", "accuracy": "#2563eb", "precision": "#16a34a", "recall": "#7c3aed", "f1": "#db2777"}


def _layout(fig: go.Figure, title: str, revision: str) -> go.Figure:
    fig.update_layout(title={"text": title, "font": {"size": 14}}, height=300, template=None,
                      margin={"l": 50, "r": 50, "t": 40, "b": 40}, plot_bgcolor="white", paper_bgcolor="white",
                      legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"},
                      uirevision=revision)  # keeps a user's zoom across polls
    return fig


def _waiting(fig: go.Figure, text: str) -> go.Figure:
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5, font={"color": "#6b7280"})
    return fig


def train_figure(rows: list[dict]) -> go.Figure:
    """Training loss (left axis) and the accuracy on the batches of each logged window (right axis)."""
    train = [r for r in rows if r.get("kind") == "train"]
    fig = _layout(make_subplots(specs=[[{"secondary_y": True}]]), "Training loss and accuracy", "train")
    if not train:
        return _waiting(fig, "waiting for the first logged step")
    steps = [r["step"] for r in train]
    fig.add_scatter(x=steps, y=[r["loss"] for r in train], name="loss", line={"color": COLOURS["loss"]})
    fig.add_scatter(x=steps, y=[r["accuracy"] for r in train], name="train accuracy",
                    line={"color": COLOURS["accuracy"], "dash": "dot"}, secondary_y=True)
    fig.update_xaxes(title_text="optimizer step")
    fig.update_yaxes(title_text="cross-entropy", secondary_y=False)
    fig.update_yaxes(title_text="accuracy", range=[0, 1], secondary_y=True)
    return fig


def eval_figure(rows: list[dict]) -> go.Figure:
    """Accuracy, precision, recall and F1 on the held-out examples at each evaluation."""
    evals = [r for r in rows if r.get("kind") == "eval"]
    fig = _layout(go.Figure(), "Evaluation (held-out examples)", "eval")
    if not evals:
        return _waiting(fig, "the first evaluation comes at eval_every steps, or at the end")
    for name in EVAL_METRICS:
        fig.add_scatter(x=[r["step"] for r in evals], y=[r[name] for r in evals], name=name, mode="lines+markers",
                        line={"color": COLOURS[name]})
    fig.update_xaxes(title_text="optimizer step")
    fig.update_yaxes(title_text="score", range=[0, 1.02])
    return fig


def confusion_figure(rows: list[dict]) -> go.Figure:
    """The latest evaluation's confusion matrix: true label down, predicted label across."""
    evals = [r for r in rows if r.get("kind") == "eval" and r.get("confusion")]
    fig = _layout(go.Figure(), "Confusion matrix (latest evaluation)", "confusion")
    if not evals:
        return _waiting(fig, "no evaluation yet")
    last = evals[-1]
    labels = [plot_text(label) for label in last.get("labels") or range(len(last["confusion"]))]
    fig.add_heatmap(z=last["confusion"], x=labels, y=labels, colorscale="Blues", text=last["confusion"],
                    texttemplate="%{text}", hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>")
    fig.update_xaxes(title_text="predicted", type="category")
    fig.update_yaxes(title_text="true", type="category", autorange="reversed")
    fig.update_layout(title={"text": f"Confusion matrix (step {last['step']})"})
    return fig


def _eval_line(name: str, row: dict | None) -> str:
    if not row:
        return ""
    scores = ", ".join(f"{m} {row[m]:.4f}" for m in EVAL_METRICS if m in row)
    return f"| {name} (step {row.get('step')}) | {scores} |\n"


def summary_markdown(summary: dict) -> str:
    """Best and last evaluation, and the trainable-parameter count with why it is what it is."""
    if not summary:
        return ""
    text = "| evaluation | scores |\n|---|---|\n"
    text += _eval_line("best", summary.get("best_eval")) + _eval_line("last", summary.get("last_eval"))
    if summary.get("trainable_params") is not None:
        text += (f"\n**Trainable parameters: {summary['trainable_params']:,}** of {summary.get('total_params', 0):,} "
                 f"({summary.get('method')}). {summary.get('trainable_note', '')}")
    if summary.get("samples_per_s"):
        text += f"\n\nTraining throughput: {summary['samples_per_s']:,.1f} samples/s on {summary.get('device', '?')}."
    return text
