"""Dataset tab: look at a corpus the way the course does before training on it.

Split sizes, the label sanity check, seeded samples, token lengths against the model's
maximum, a chunking preview and the words the tokenizer cuts into pieces. The engine
(engine.data.stats, engine.data.shredded, engine.data.uploads) does the work and caches
the tokenization; this module builds widgets from its plain results.

Public API (gradio_client), `/dataset_stats`:
    client.predict(source, hub_id, upload, text_column, model, chunk_size, max_docs, corpus_id, label_column,
                   api_name="/dataset_stats")
  Inputs: source "imdb" | "rotten_tomatoes" (bundled) | "stored" (then corpus_id, from `/list_corpora`) |
    "hub" (online, or offline when cached) | "upload" (kept as a stored corpus: label_column names its
    labels, "" = none);
    hub_id (e.g. "stanfordnlp/imdb", used when source is "hub"); upload (a file through
    gradio_client.handle_file(path): CSV, TSV, JSON, JSONL, Parquet or TXT, used when
    source is "upload", else None); text_column ("" = "text", or for an upload the
    column with the longest texts); model ("bundled", a local folder or a Hub id; "" =
    the default); chunk_size (8 .. the model's maximum); max_docs (0 = every document).
  Output (JSON): {"corpus" (its name), "corpus_id" (the stored corpus's id),
    "model": {"ref", "max_length"}, "split_sizes": {split: n},
    "label_counts": {split: {label: n}} or null, "labels_ok": true | false | null,
    "sanity": str, "token_lengths": {split: {"documents", "mean", "median", "p95",
    "longest", "max_length", "over_max", "share_over_max"}}, "chunk_size",
    "chunks": {split: {"chunks", "tokens", "dropped_tokens"}}, "notices": [str],
    "cache_hit", "seconds"}. Bad input (chunk size 0, empty or binary upload, ...)
    raises an error whose message says what to change.
"""

from __future__ import annotations

import functools
import html
import os
import random
from dataclasses import asdict, fields

import gradio as gr
import numpy as np
import pandas as pd

from components import corpus_picker
from components.common import cached_line, chunk_hint, code, table, user_errors
from components.plots import token_length_histogram
from engine.data import (
    BUNDLED_SOURCES,
    SPLIT_COLUMNS,
    SUPPORTED,
    CorpusConfig,
    describe_upload,
    load_corpus,
    split_words,
    store,
    tokenize_corpus,
)
from engine.data import stats as corpus_stats
from engine.errors import UserError
from engine.models import BUNDLED, ONLINE_DEFAULT, cached_tokenizer, default_model_ref, max_length_of
from engine.numbers import check_chunk_size, optional_whole
from engine.offline import is_offline
from engine.validation import check

SOURCES = [(label, key) for key, label in BUNDLED_SOURCES.items()] + [
    ("A stored corpus (analysed before)", "stored"),
    ("Hub dataset", "hub"),
    ("Upload a file", "upload"),
]
SPLIT_WORD_DOCS = 2000
CSS = """
.ds-sample { border-left: 3px solid #3b82f6; padding: 4px 10px; margin: 8px 0; white-space: pre-wrap; }
.ds-sample-head { font-weight: 600; font-size: 0.9em; opacity: 0.8; }
.ds-chunk { font-family: ui-monospace, monospace; white-space: pre-wrap; line-height: 1.6; }
.ds-special { background: #fcd34d; color: #111; border-radius: 3px; padding: 0 3px; font-weight: 600; }
"""


# ---------------------------------------------------------------- inputs to engine values


def corpus_config(source: str, hub_id: str, upload, text_column: str, max_docs, corpus_id: str = "",
                  label_column: str = "label") -> CorpusConfig:
    """The CorpusConfig the widgets describe, or a UserError saying which widget to fix.

    An upload is kept as a stored corpus first (by content, so once), and read from the store
    from then on: the same path the Train tab and the worker take."""
    source, hub_id, text_column, corpus_id, label_column = (
        _text(v, label) for v, label in ((source, "Source"), (hub_id, "Hub dataset id"), (text_column, "Text column"),
                                         (corpus_id, "Corpus id"), (label_column, "Label column")))
    if upload is not None and not isinstance(upload, str | dict) and not hasattr(upload, "path"):
        raise UserError("The upload must be a file (gradio_client.handle_file(path)) or nothing.")
    docs = optional_whole(max_docs, "Documents to use")
    if docs < 0:
        raise UserError(f"Documents to use must be 0 (all) or more, got {docs}.")
    column = (text_column or "").strip()
    if source in BUNDLED_SOURCES:
        return CorpusConfig(source=source, max_docs=docs)
    if source == "hub":
        return CorpusConfig(source="hub", hub_id=(hub_id or "").strip(), text_column=column or "text", max_docs=docs)
    if source == "upload":
        path = upload if isinstance(upload, str) else getattr(upload, "path", None) or (upload or {}).get("path")
        if not path:
            raise UserError("Upload a file first (CSV, TSV, JSON, JSONL, Parquet or TXT).")
        stored = stored_upload(path, column, (label_column or "").strip())
        return CorpusConfig(source="stored", corpus_id=stored.corpus_id, max_docs=docs)
    if source == "stored":
        cid = store.get(corpus_id).corpus_id  # UserError for an unknown id or one that is not an id
        if cid in BUNDLED_SOURCES:
            return CorpusConfig(source=cid, max_docs=docs)
        return CorpusConfig(source="stored", corpus_id=cid, max_docs=docs)
    raise UserError(f"Unknown source {source!r}: use imdb, rotten_tomatoes, stored, hub or upload.")


def stored_upload(path: str, column: str, label_column: str) -> store.StoredCorpus:
    """The stored corpus of an uploaded file (each event of the tab asks; the file is parsed once)."""
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        raise UserError("The uploaded file is gone from the server: upload it again.") from None
    return _stored_upload(path, stamp, column, label_column)


@functools.lru_cache(maxsize=16)
def _stored_upload(path: str, _stamp: int, column: str, label_column: str) -> store.StoredCorpus:
    return store.store_upload(path, column, label_column)


def _text(value, label: str) -> str:
    """An optional text argument of the API: None or text, held to the engine's length bound."""
    return "" if value is None else check(value, "str", label)


def model_ref(model: str) -> str:
    return _text(model, "Model").strip() or default_model_ref()


def _corpus_name(cfg: CorpusConfig) -> str:
    if cfg.source in BUNDLED_SOURCES:
        return BUNDLED_SOURCES[cfg.source]
    if cfg.source == "stored":
        return store.get(cfg.corpus_id).name
    if cfg.source == "hub":
        return f"{cfg.hub_id} (Hub)"
    return f"{cfg.upload_path.rsplit('/', 1)[-1]} (upload, column {cfg.text_column or 'default'})"


# ---------------------------------------------------------------- handlers


@user_errors
def dataset_stats(source, hub_id, upload, text_column, model, chunk_size, max_docs, corpus_id="",
                  label_column="label", progress=gr.Progress()) -> dict:
    """The JSON summary behind `/dataset_stats` (see the module docstring)."""
    cfg = corpus_config(source, hub_id, upload, text_column, max_docs, corpus_id, label_column)
    ref = model_ref(model)
    progress(0.0, desc="Loading the tokenizer and the corpus")
    tokenizer, max_length = cached_tokenizer(ref), max_length_of(ref)
    stats = corpus_stats.dataset_stats(cfg, tokenizer, max_length, chunk_size, progress)
    name = _corpus_name(cfg)
    if cfg.source == "hub":  # analysed once: kept, so every tab (and the worker) can use it by id
        cfg = CorpusConfig(source="stored", corpus_id=store_hub(cfg).corpus_id, max_docs=cfg.max_docs)
    return {"corpus": name, "corpus_id": cfg.corpus_id or cfg.source,
            "model": {"ref": ref, "max_length": max_length}, **stats}


def store_hub(cfg: CorpusConfig) -> store.StoredCorpus:
    from engine.data import load_hub

    return store.store_hub(load_hub(cfg), cfg.hub_id, cfg.hub_config, cfg.text_column, cfg.label_column)


@user_errors
def dataset_view(source, hub_id, upload, text_column, corpus_id, label_column, model, chunk_size, max_docs,
                 n_samples, seed, progress=gr.Progress()):
    """Every widget of the tab; runs after dataset_stats, so the tokenization is cached."""
    cfg = corpus_config(source, hub_id, upload, text_column, max_docs, corpus_id, label_column)
    ref = model_ref(model)
    tokenizer, max_length = cached_tokenizer(ref), max_length_of(ref)
    corpus = load_corpus(cfg)
    tokenized = tokenize_corpus(cfg, tokenizer, progress)
    counts = corpus_stats.label_counts(corpus)
    check = corpus_stats.label_check(counts)
    lengths = [corpus_stats.length_summary(tokenized.splits[s].doc_lengths, max_length) for s in corpus_stats.SPLITS]
    all_lengths = np.concatenate([tokenized.splits[s].doc_lengths for s in corpus_stats.SPLITS])
    progress(0.9, desc=f"Counting the words the tokenizer splits ({SPLIT_WORD_DOCS:,} sampled documents)")
    words = split_words(corpus["train"][:]["text"], tokenizer, SPLIT_WORD_DOCS, optional_whole(seed, "Seed"))
    chunk_md, chunk_html = chunk_view(tokenized, chunk_size, max_length, tokenizer)
    return (
        corpus_stats.split_sizes(corpus),
        counts,
        sanity_markdown(check, corpus),
        samples_html(corpus_stats.random_samples(corpus, n_samples, seed)),
        token_length_histogram(all_lengths, max_length),
        pd.DataFrame([{"split": s, **asdict(x)} for s, x in zip(corpus_stats.SPLITS, lengths)]),
        chunk_md,
        chunk_html,
        words.most_pieces,
        words.most_frequent,
        words.summary(),
    )


@user_errors
def samples_only(source, hub_id, upload, text_column, corpus_id, label_column, max_docs, n_samples, seed) -> str:
    corpus = load_corpus(corpus_config(source, hub_id, upload, text_column, max_docs, corpus_id, label_column))
    return samples_html(corpus_stats.random_samples(corpus, n_samples, seed))


@user_errors
def chunks_only(source, hub_id, upload, text_column, corpus_id, label_column, model, chunk_size, max_docs,
                progress=gr.Progress()):
    cfg = corpus_config(source, hub_id, upload, text_column, max_docs, corpus_id, label_column)
    ref = model_ref(model)
    tokenizer = cached_tokenizer(ref)
    return chunk_view(tokenize_corpus(cfg, tokenizer, progress), chunk_size, max_length_of(ref), tokenizer)


def on_upload(upload):
    """Fill the column pickers from the file; report a bad file here rather than later."""
    path = upload if isinstance(upload, str) else None
    if not path:
        return gr.update(choices=["text"], value="text"), gr.update(choices=["", "label"], value="label"), ""
    try:
        info = describe_upload(path)
    except UserError as exc:
        return gr.update(choices=[], value=None), gr.update(choices=[""], value=""), f"⚠️ {html.escape(str(exc))}"
    labels = ["", "label"] + [c for c in info.columns if c != "label"]
    return (gr.update(choices=info.columns, value=info.default), gr.update(choices=labels, value="label"),
            upload_summary(path, info.default))


def upload_summary(upload, column) -> str:
    """The file's summary and the text column in use now (rewritten when the user picks another)."""
    path = upload if isinstance(upload, str) else None
    if not path:
        return ""
    try:
        info = describe_upload(path)
    except UserError as exc:
        return f"⚠️ {html.escape(str(exc))}"
    column = (column or "").strip() or info.default
    why = ("named text" if column == "text" else "the longest texts") if column == info.default else "your pick"
    notes = "".join(f"\n- ⚠️ {html.escape(n)}" for n in info.notices)
    return (f"**{html.escape(info.name)}**: {info.kind}, {info.rows:,} rows. Text column: "
            f"{code(column)} ({why}).{notes}")


def on_source(source):
    hub, upload, stored = source == "hub", source == "upload", source == "stored"
    return (gr.update(visible=hub), gr.update(visible=upload), gr.update(visible=hub or upload),
            gr.update(visible=stored), gr.update(visible=upload))


def stored_markdown(stats: dict | None) -> str:
    """Which stored corpus the analysis is about: its id (for the API and the CLI) and its name."""
    cid = (stats or {}).get("corpus_id")
    if not cid:
        return ""
    meta = store.get(cid)
    where = "bundled with the app" if meta.origin == "bundled" else "stored on this server"
    labels = f", label column {code(meta.label_column)}" if meta.label_column else ", no labels"
    return (f"**Corpus** {html.escape(meta.name)} ({where}): id `{meta.corpus_id}`, {meta.rows:,} rows, "
            f"text column {code(meta.text_column)}{labels}. Pick it in every tab's corpus list, or "
            f"`python -m engine train --corpus-id {meta.corpus_id}`.")


def on_stored(stats: dict | None):
    """After an analysis: the stored corpus's line, and its name in the rename box (bundled ones keep theirs)."""
    cid = (stats or {}).get("corpus_id")
    if not cid:
        return "", gr.update(value="", interactive=False), ""
    meta = store.get(cid)
    return (stored_markdown(stats), gr.update(value=meta.name, interactive=meta.origin != "bundled"),
            meta.corpus_id)


@user_errors
def on_rename(corpus_id: str, name: str):
    if not corpus_id:
        raise UserError("Analyse a corpus first: the name belongs to the stored corpus.")
    if not (name or "").strip():
        raise UserError("A corpus name cannot be empty.")
    meta = store.rename(corpus_id, name)
    gr.Info(f"Renamed to {html.escape(meta.name, quote=False)}.")  # the toast renders HTML
    return meta.name, stored_markdown({"corpus_id": meta.corpus_id})


# ---------------------------------------------------------------- views


def sanity_markdown(check: corpus_stats.LabelCheck, corpus) -> str:
    icon = {True: "✅", False: "⚠️", None: "ℹ️"}[check.ok]
    notes = "".join(f"\n\n⚠️ {html.escape(n)}" for n in corpus_stats.corpus_notices(corpus))
    return f"**Label sanity check** {icon} {check.message}{notes}"


def samples_html(frame: pd.DataFrame) -> str:
    parts = []
    for i, row in enumerate(frame.itertuples(index=False), start=1):
        label = f" · label {html.escape(str(row.label))}" if "label" in frame.columns else ""
        parts.append(f'<div class="ds-sample"><div class="ds-sample-head">Sample {i}{label}</div>'
                     f"{html.escape(row.text)}</div>")
    return "".join(parts) or "<p>No documents.</p>"


def chunk_view(tokenized, chunk_size, max_length: int, tokenizer) -> tuple[str, str]:
    """The chunking counts per split and one decoded train chunk with the boundaries highlighted."""
    size = check_chunk_size(chunk_size, max_length)
    previews = {s: corpus_stats.chunk_preview(tokenized.splits[s], size, tokenizer) for s in corpus_stats.SPLITS}
    lines = [f"**Chunks of {size} tokens** (the remainder of each split is dropped once, as in the course):"]
    for split, p in previews.items():
        chunks = "1 chunk" if p.chunks == 1 else f"{p.chunks:,} chunks"
        lines.append(f"- {split}: {p.tokens:,} tokens → **{chunks}**, {p.dropped:,} tokens dropped")
    train = previews["train"]
    if train.chunks == 0:
        return "\n".join(lines), "<p>The train split is shorter than one chunk: pick a smaller chunk size.</p>"
    where = (f"Train chunk {train.index:,}: {train.boundaries} document boundar"
             f"{'y' if train.boundaries == 1 else 'ies'} ({tokenizer.sep_token} {tokenizer.cls_token}) inside.")
    lines.append("\n" + (where if train.boundaries else f"Train chunk {train.index:,} (no document boundary inside)."))
    return "\n".join(lines), f'<div class="ds-chunk">{_highlight_specials(train.text, tokenizer)}</div>'


def _highlight_specials(text: str, tokenizer) -> str:
    shown = html.escape(text)
    for token in sorted(set(tokenizer.all_special_tokens), key=len, reverse=True):
        escaped = html.escape(token)
        shown = shown.replace(escaped, f'<span class="ds-special">{escaped}</span>')
    return shown


# ---------------------------------------------------------------- layout


def render() -> gr.JSON:
    """Build the tab; returns its dataset_stats JSON so the Costs tab can take the corpus size from it."""
    gr.Markdown(
        "### Look at the corpus first\nAs in the course: check the split sizes and that the labels are really 0/1, "
        "read a few samples, see how long the texts are against the model's maximum, how they are cut into chunks, "
        "and which words the tokenizer does not know as a whole (the domain vocabulary that adaptation helps with)."
    )
    with gr.Row():
        with gr.Column():
            source = gr.Radio(SOURCES, value="imdb", label="Corpus", elem_id="ds-source")
            hub_note = " (offline now: only a cached one loads)" if is_offline() else ""
            hub_id = gr.Textbox("stanfordnlp/imdb", label=f"Hub dataset id{hub_note}", visible=False,
                                info=cached_line("dataset"))
            upload = gr.File(label="Your corpus: " + ", ".join(sorted(SUPPORTED)), file_types=sorted(SUPPORTED),
                             type="filepath", visible=False, elem_id="ds-upload")
            stored_pick = corpus_picker.render("Stored corpus", elem_id="ds-stored", visible=False)
            text_column = gr.Dropdown(["text"], value="text", allow_custom_value=True, visible=False,
                                      label="Text column")
            label_column = gr.Dropdown(["", "label"], value="label", allow_custom_value=True, visible=False,
                                       label="Label column (empty: none)", elem_id="ds-label-column")
            upload_note = gr.Markdown(elem_id="ds-upload-note")
            limits_md = gr.Markdown(corpus_picker.limits_text, elem_id="ds-limits")  # counted at each page load
        with gr.Column():
            online = default_model_ref() == ONLINE_DEFAULT  # online, or offline with it cached
            choices = list(dict.fromkeys([default_model_ref(), BUNDLED] + ([ONLINE_DEFAULT] if online else [])))
            model = gr.Dropdown(choices, value=default_model_ref(), allow_custom_value=True,
                                label="Tokenizer of model: bundled, a local folder or a Hub id",
                                info=cached_line("model"), elem_id="ds-model")
            chunk_size = gr.Number(128, precision=0, label="Chunk size (tokens; press Enter to update the preview)",
                                   elem_id="ds-chunk-size")
            with gr.Row():
                n_samples = gr.Number(3, precision=0, label="Samples", minimum=1, maximum=corpus_stats.MAX_SAMPLES)
                seed = gr.Number(42, precision=0, label="Seed", minimum=0)
                reroll = gr.Button("Re-roll samples")
            max_docs = gr.Number(0, precision=0, label="Documents to use (0 = all)", minimum=0)
            analyse = gr.Button("Analyse corpus", variant="primary", elem_id="ds-analyse")

    stored_md = gr.Markdown(elem_id="ds-stored-info")
    with gr.Row():
        stored_id = gr.Textbox(visible=False)
        stored_name = gr.Textbox(label="Corpus name (shown in every tab's corpus list)", interactive=False,
                                 max_length=store.NAME_MAX, elem_id="ds-corpus-name", scale=4)
        rename_btn = gr.Button("Rename", elem_id="ds-rename", scale=1)
    sanity = gr.Markdown(elem_id="ds-sanity")
    with gr.Row():
        sizes = table("Split sizes (documents)", ["split", "documents"])
        labels = table("Labels per split", ["split", "label", "documents", "share"])
    gr.Markdown("### Samples")
    samples = gr.HTML(css_template=CSS, elem_id="ds-samples")
    gr.Markdown("### Token lengths")
    histogram = gr.Plot(label="Tokens per document")
    lengths = table("Token lengths per split", ["split", *(f.name for f in fields(corpus_stats.LengthSummary))])
    gr.Markdown("### Chunking preview")
    chunk_md = gr.Markdown(elem_id="ds-chunk-summary")
    chunk_html = gr.HTML(css_template=CSS, elem_id="ds-chunk")
    gr.Markdown("### Words the tokenizer splits")
    words_md = gr.Markdown()
    with gr.Row():
        pieces = table("Split into the most pieces", SPLIT_COLUMNS)
        frequent = table("Split words met most often", SPLIT_COLUMNS)
    with gr.Accordion("Summary as JSON (what /dataset_stats returns)", open=False):
        stats_json = gr.JSON(label="dataset_stats")

    corpus_inputs = [source, hub_id, upload, text_column, stored_pick, label_column]
    view_outputs = [sizes, labels, sanity, samples, histogram, lengths, chunk_md, chunk_html, pieces, frequent,
                    words_md]
    stats_args = [source, hub_id, upload, text_column, model, chunk_size, max_docs, stored_pick, label_column]

    def clear():
        """Another corpus is picked: the previous corpus's results must not stay on screen as if they were its."""
        return [None] * len(view_outputs) + [None, "", gr.update(value="", interactive=False), ""]

    cleared = [*view_outputs, stats_json, stored_md, stored_name, stored_id]
    source.change(on_source, source, [hub_id, upload, text_column, stored_pick, label_column], api_visibility="private")
    for widget in (source, stored_pick, upload):
        widget.change(clear, None, cleared, api_visibility="private", queue=False)
    upload.change(on_upload, upload, [text_column, label_column, upload_note], api_visibility="private")
    text_column.change(upload_summary, [upload, text_column], upload_note, api_visibility="private")
    analyse.click(
        dataset_stats, stats_args, stats_json, api_name="dataset_stats",
        show_progress_on=[sizes, sanity, histogram],
    ).success(on_stored, stats_json, [stored_md, stored_name, stored_id], api_visibility="private").success(
        corpus_picker.limits_text, None, limits_md, api_visibility="private",  # the analysis may have stored one
    ).success(
        dataset_view, [*corpus_inputs, model, chunk_size, max_docs, n_samples, seed], view_outputs,
        api_visibility="private", show_progress_on=[samples, histogram, pieces],
    )
    rename_btn.click(on_rename, [stored_id, stored_name], [stored_name, stored_md], api_visibility="private")
    sample_inputs = [*corpus_inputs, max_docs, n_samples, seed]
    reroll.click(lambda: random.randrange(100_000), None, seed, api_visibility="private").then(
        samples_only, sample_inputs, samples, api_visibility="private")
    seed.submit(samples_only, sample_inputs, samples, api_visibility="private")
    model.change(chunk_hint, model, chunk_size, api_visibility="private")
    chunk_size.submit(chunks_only, [*corpus_inputs, model, chunk_size, max_docs], [chunk_md, chunk_html],
                      api_visibility="private")
    return stats_json
