"""User text reaches Plotly labels escaped: Plotly renders a subset of HTML in them."""

from __future__ import annotations

import pandas as pd

from components.classify_plots import confusion_figure
from components.compare_plots import downstream_figure, perplexity_figure
from components.plots import plot_text

EVIL = '<a href="https://evil.example">click</a><b>run'


def test_names_and_labels_show_as_typed():
    assert plot_text("<mask>") == "&lt;mask&gt;" and plot_text(3) == "3"
    ppl = perplexity_figure(pd.DataFrame({"model": [EVIL], "perplexity": [12.0]}))
    assert list(ppl.data[0].x) == [plot_text(EVIL)] and "<a" not in str(ppl.data[0].x)
    down = downstream_figure(pd.DataFrame({"model": [EVIL], "accuracy_mean": [0.8], "accuracy_std": [0.01]}))
    assert "<b>" not in str(down.data[0].x)
    rows = [{"kind": "eval", "step": 3, "labels": [EVIL, "pos"], "confusion": [[1, 0], [0, 1]]}]
    fig = confusion_figure(rows)
    assert list(fig.data[0].x) == [plot_text(EVIL), "pos"]


def test_an_unlikely_token_reads_the_same_in_the_chart_the_cards_and_the_table():
    """0.0007 is 0.0007 everywhere (the table rounds to 4 decimals), not 0.001 in the chart and cards."""
    from components.compare_plots import probability_text

    assert [probability_text(p) for p in (0.41234, 0.0123, 0.0007, 0.000123)] == ["0.412", "0.012", "0.0007",
                                                                                   "0.00012"]
    assert probability_text(0.0007) == str(round(0.0007, 4))
