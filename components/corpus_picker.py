"""One corpus picker for every tab: a dropdown of the stored corpora (engine.data.store), bundled first.

Its choices are read again when the page loads and whenever its tab is selected, so a corpus
analysed on the Dataset tab appears in the Masking, Train, Compare and Costs pickers without a reload.

    picker = corpus_picker.render(label="Corpus", elem_id="train-corpus", extra=[("A Hub dataset", "hub")])
    ...
    corpus_picker.wire(demo, tabs)   # app.py, once every tab is built: refresh them all on load and tab change
"""

from __future__ import annotations

import gradio as gr

from engine.data import store

DEFAULT = "imdb"
PRIVATE = {"api_visibility": "private"}


def label_of(corpus: store.StoredCorpus) -> str:
    """What the picker shows: the display name, its size and, for a user corpus, the id's start."""
    kind = "" if corpus.origin == "bundled" else f" · {corpus.corpus_id[:6]}"
    labels = f", labels: {corpus.label_column}" if corpus.label_column and corpus.origin != "bundled" else ""
    return f"{corpus.name} · {corpus.rows:,} rows{labels}{kind}"


def choices(extra: list[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    return [(label_of(c), c.corpus_id) for c in store.list_corpora()] + list(extra)


def limits_text() -> str:
    """The limits a user meets when adding a corpus (the store's and engine.data.uploads')."""
    from engine.data import limits_text as upload_limits

    stored = len(store.list_corpora()) - len(store.BUNDLED)
    return (f"Stored corpora: {stored} of at most {store.max_corpora()} (MLM_MAX_CORPORA; the least recently "
            f"used corpus that no run refers to makes room). {upload_limits()}")


def render(label: str = "Corpus", elem_id: str | None = None, value: str = DEFAULT,
           extra: list[tuple[str, str]] = (), **kwargs) -> gr.Dropdown:
    extra = list(extra)
    # allow_custom_value: the choices were read when the app was built; a corpus stored since (or an id
    # from the API) is checked by engine.data.store instead.
    picker = gr.Dropdown(choices(extra), value=value, label=label, elem_id=elem_id, allow_custom_value=True,
                         **kwargs)
    picker.extra_choices = extra  # wire() rebuilds the same list
    _pending.append(picker)
    return picker


def refreshed(current, extra: list[tuple[str, str]]):
    """The picker with today's corpora; the current pick stays when it still exists."""
    options = choices(extra)
    known = {value for _, value in options}
    return gr.Dropdown(choices=options, value=current if current in known else DEFAULT)


_pending: list[gr.Dropdown] = []  # pickers made while the app is being built, until wire() takes them


def wire(demo: gr.Blocks, tabs: gr.Tabs) -> None:
    """Re-read the store for every picker made so far when the page loads and when a tab is selected."""
    pickers, extras = list(_pending), [getattr(p, "extra_choices", []) for p in _pending]
    _pending.clear()
    if not pickers:
        return

    def refresh(*current):
        updates = [refreshed(value, extra) for value, extra in zip(current, extras)]
        return updates if len(updates) > 1 else updates[0]

    demo.load(refresh, pickers, pickers, **PRIVATE)
    tabs.select(refresh, pickers, pickers, **PRIVATE)
