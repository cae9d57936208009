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
