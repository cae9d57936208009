"""The runs table (in the spirit of trackio): every run on this server, one row each, sortable by
any column; several runs' training loss and eval perplexity overlaid on one chart; and the exact
command or API call that starts the same run again.

Pure functions of engine.runs.jobs.list_runs() rows and metrics rows (no widgets), so the Train
tab can rebuild them on any poll and tests can check them without a browser.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from components.run_plots import frames

COLUMNS = ["run id", "name", "kind", "corpus", "model", "method", "trainable params", "state", "step",
           "perplexity before", "perplexity after", "duration", "estimate", "created"]
PALETTE = ["#2563eb", "#ea580c", "#16a34a", "#7c3aed", "#dc2626", "#0891b2", "#ca8a04", "#db2777"]


def _model(ref) -> str:
    ref = str(ref or "?")
    return Path(ref).name if "/" in ref and Path(ref).is_absolute() else ref


def _seconds(value) -> str:
    if value is None:
        return ""
    value = int(round(value))
    return f"{value // 60}:{value % 60:02d}" if value < 3600 else f"{value / 3600:.1f} h"


def _step(row) -> str:
    return f"{row.get('step') or 0:,}" + (f" / {row['total_steps']:,}" if row.get("total_steps") else "")


def _state(row) -> str:
    return row["state"] + (f" (#{row['queue_position']} in queue)" if row.get("queue_position") else "")


def corpus_names() -> dict[str, str]:
    """Stored corpus id -> display name (a run records the id; people read the name)."""
    from engine.data import store

    return {c.corpus_id: c.name for c in store.list_corpora()}


def history_frame(rows: list[dict]) -> pd.DataFrame:
    """The runs table, newest first. Numbers stay numbers where the column sorts by value."""
    names = corpus_names()
    data = [[r["run_id"], r.get("name") or r["run_id"], r.get("kind", "mlm"),
             names.get(r.get("corpus"), r.get("corpus") or "?"),
             _model(r["model"]), r["method"], r.get("trainable_params"), _state(r), _step(r),
             _round(r.get("perplexity_before")), _round(r.get("perplexity_after")), _seconds(r.get("duration_s")),
             _seconds(r.get("estimate_s")),
             time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"])) if r.get("created_at") else ""]
            for r in rows]
    return pd.DataFrame(data, columns=COLUMNS)


def _round(value):
    return None if value is None else round(float(value), 2)


def choices(rows: list[dict]) -> list[tuple[str, str]]:
    """(label, run id) for a run picker: the name first, the id to tell equal names apart."""
    return [(f"{r.get('name') or r['run_id']} · {r['run_id'][-6:]}", r["run_id"]) for r in rows]


def overlay(runs: list[tuple[str, list[dict]]], x: str = "step") -> go.Figure:
    """Training loss (left) and eval perplexity (right, log axis) of several runs, one colour per run."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("Training loss", "Eval perplexity (log axis)"))
    for i, (name, rows) in enumerate(runs):
        colour = PALETTE[i % len(PALETTE)]
        train, evals = frames(rows)
        label = html.escape(name)  # plotly renders legend text as HTML
        if not train.empty and "loss" in train:
            fig.add_scatter(x=train[x], y=train["loss"], name=label, legendgroup=label, mode="lines",
                            line={"color": colour}, row=1, col=1)
        if not evals.empty and "eval_perplexity" in evals:
            fig.add_scatter(x=evals[x], y=evals["eval_perplexity"], name=label, legendgroup=label,
                            mode="lines+markers", line={"color": colour}, showlegend=train.empty, row=1, col=2)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_xaxes(title_text=x)
    fig.update_layout(height=340, margin={"l": 50, "r": 10, "t": 40, "b": 40}, template=None,
                      plot_bgcolor="white", paper_bgcolor="white",
                      legend={"orientation": "h", "y": -0.25})
    if not runs:
        fig.add_annotation(text="pick runs above to overlay their curves", showarrow=False, xref="paper",
                           yref="paper", x=0.5, y=0.5)
        fig.update_xaxes(visible=False)  # bare axes from -1 to 6 around nothing read as a broken chart
        fig.update_yaxes(visible=False)
    return fig


def commands(settings: dict, server_url: str = "http://127.0.0.1:7860/") -> str:
    """Markdown with the CLI command and the gradio_client call that start the same run again."""
    settings = {k: v for k, v in settings.items() if k not in ("run_id", "created_at")}
    config = json.dumps(settings, indent=2)
    one_line = json.dumps(settings)
    return (
        "**From a terminal** (save the JSON as `run.json`):\n\n"
        f"```bash\ncat > run.json <<'JSON'\n{config}\nJSON\npython -m engine train --config run.json\n```\n\n"
        "**From Python** (`pip install gradio_client`):\n\n"
        f"```python\nfrom gradio_client import Client\n\nclient = Client({server_url!r})\n"
        f"run = client.predict({one_line!r}, api_name=\"/start_training\")\nprint(run)\n```"
    )
