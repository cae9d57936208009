"""Plotly figures for the Dataset tab (other tabs keep theirs next to their own code)."""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

BLUE, RED = "#3b82f6", "#ef4444"


def plot_text(value) -> str:
    """A user's text (a run name, a corpus label, a predicted token) as Plotly label text: Plotly
    renders a subset of HTML in labels (<b>, <br>, <a href>), so a name such as "<b>x" or a
    RoBERTa "<mask>" token would be styled or vanish; escaped, it shows as typed."""
    return html.escape(str(value), quote=False)


def token_length_histogram(lengths: np.ndarray, max_length: int, title: str = "Tokens per document") -> go.Figure:
    """Documents per token-length bin, the bins past the model's maximum in red, the maximum marked.

    Binned here with numpy, so the page receives ~100 bars rather than every length.
    """
    lengths = np.asarray(lengths)
    fig = go.Figure()
    if lengths.size:
        width = max(1, max_length // 16)  # the maximum falls on a bin edge
        top = min(int(lengths.max()), 4 * max_length)  # longer ones share the last bin
        edges = np.arange(0, top + width + 1, width)
        counts, _ = np.histogram(np.minimum(lengths, edges[-1] - 1), bins=edges)
        starts, centres = edges[:-1], edges[:-1] + width / 2
        over = starts >= max_length
        for mask, colour, name in ((~over, BLUE, "fits"), (over, RED, f"longer than {max_length}")):
            fig.add_bar(
                x=centres[mask], y=counts[mask], width=width, marker_color=colour, name=name,
                customdata=np.stack([starts[mask], starts[mask] + width - 1], axis=-1),
                hovertemplate="%{customdata[0]}–%{customdata[1]} tokens: %{y} documents<extra></extra>",
            )
        share = float((lengths > max_length).mean())
        title = f"{title}: {100 * share:.1f}% of {lengths.size:,} longer than the model's {max_length}"
    fig.add_vline(x=max_length, line_dash="dash", line_color="#111",
                  annotation_text=f"model max length {max_length}", annotation_position="top right")
    fig.update_layout(
        title=title, xaxis_title="tokens per document ([CLS] and [SEP] included)", yaxis_title="documents",
        bargap=0.05, barmode="overlay", height=360, margin=dict(l=50, r=20, t=60, b=50),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0),
    )
    return fig
