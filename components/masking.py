"""Masking tab: what DataCollatorForLanguageModeling does to a text or a corpus chunk.

Every preview runs transformers' collator itself (engine.masking); this module only
turns its output into a highlighted token view, a counts table and a batch statistic.

Public API (gradio_client): `/mask_preview`, see `mask_preview` below.
"""

from __future__ import annotations

import html
import random

import gradio as gr
import pandas as pd

from components import corpus_picker, objectives
from components.common import piece_marks, table, user_errors
from engine.architectures import DEFAULT_MASK_RATES
from engine.data import BUNDLED_SOURCES, CorpusConfig, prepare, store
from engine.errors import UserError
from engine.masking import (
    DEFAULT_TEXT,
    KIND_NAMES,
    KINDS,
    NOISE_NOTE,
    MaskingConfig,
    MaskPreview,
    batch_statistics,
    chunk_row,
    preview_chunk,
    preview_text,
)
from engine.models import BUNDLED, ONLINE_DEFAULT, cached_tokenizer, default_model_ref, max_length_of

BATCH_CHUNKS = 1000
BATCH_COLUMNS = ["quantity", "setting %", "realised %", "difference (points)", "typical noise ±1 SE (points)"]
# Colour, border style and a letter per kind, so the view does not rely on colour alone.
STYLE = {
    "mask": ("#fcd34d", "solid", "M"),
    "random": ("#c4b5fd", "dashed", "R"),
    "kept": ("#86efac", "dotted", "K"),
}
CSS = """
.mlm-legend { display:flex; flex-wrap:wrap; gap:12px; margin-bottom:8px; font-size:0.9em; }
.mlm-tokens { display:flex; flex-wrap:wrap; gap:4px 2px; align-items:flex-start; }
.mlm-tok { display:inline-flex; flex-direction:column; align-items:center; padding:1px 4px;
  border-radius:4px; font-family:ui-monospace, monospace; font-size:0.95em; }
.mlm-tok.sel, .mlm-swatch { color:#111; }
.mlm-tok.special { opacity:0.55; font-style:italic; }
.mlm-label { font-size:0.75em; color:#111; }
.mlm-sr { position:absolute; width:1px; height:1px; overflow:hidden; clip:rect(0 0 0 0); }
"""


# ---------------------------------------------------------------- engine calls


def corpus_config(corpus: str) -> CorpusConfig:
    """A bundled corpus by its name, any other by its stored id (UserError for anything else)."""
    cid = store.check_id(corpus)
    return CorpusConfig(source=cid) if cid in BUNDLED_SOURCES else CorpusConfig(source="stored", corpus_id=cid)


def _corpus_name(corpus: str) -> str:
    return store.get(corpus).name


def _train_chunks(model: str, corpus: str, chunk_size, progress=None):
    """The train split's chunks of a stored corpus (engine.data.corpus caches the tokenization on disk)."""
    tokenizer = cached_tokenizer(model)
    prepared = prepare(corpus_config(corpus), tokenizer, chunk_size, max_length_of(model), progress)
    return prepared.chunks["train"], tokenizer


def run_preview(source, text, model, corpus, chunk_size, chunk_index, cfg: MaskingConfig, progress=None) -> MaskPreview:
    model = (model or "").strip() or default_model_ref()
    if source == "chunk":
        chunks, tokenizer = _train_chunks(model, corpus, chunk_size, progress)
        result = preview_chunk(chunks, chunk_index, tokenizer, cfg)
        result.source = f"chunk {int(chunk_index)} of the {_corpus_name(corpus)} train split"
        return result
    if source != "text":
        raise UserError(f"Source must be 'text' or 'chunk', got {source!r}.")
    return preview_text(text, cached_tokenizer(model), cfg, max_length_of(model))


def objectives_text(source, chunk_size, chunk_index, text, model, corpus) -> str:
    """What the objectives panel sets: the typed text, or the picked chunk of the corpus, decoded."""
    if source != "chunk":
        return text
    model = (model or "").strip() or default_model_ref()
    chunks, tokenizer = _train_chunks(model, corpus, chunk_size)
    ids = chunk_row(chunks, chunk_index, keys=("input_ids",))["input_ids"]
    return tokenizer.decode(ids, skip_special_tokens=True)


# ---------------------------------------------------------------- views


def token_html(result: MaskPreview) -> str:
    """Tokens in order; selected ones coloured by kind, with the label to predict underneath."""
    legend = "".join(
        f'<span><span class="mlm-tok mlm-swatch" style="{_box(kind)}">{letter}</span> '
        f"{html.escape(KIND_NAMES[kind])}</span>"
        for kind, (_, _, letter) in STYLE.items()
    )
    legend += '<span>the line under a selected token (→ word) is the label the model must predict</span>'
    marks = piece_marks(t.original for t in result.tokens)
    if marks:
        legend += f"<span>{html.escape(marks)}</span>"
    return (
        f'<div class="mlm-view"><div class="mlm-legend" aria-label="Legend">{legend}</div>'
        f'<div class="mlm-tokens">{"".join(_token(t) for t in result.tokens)}</div></div>'
    )


def _box(kind: str) -> str:
    colour, border, _ = STYLE[kind]
    return f"background:{colour}; border:2px {border} #444;"


def _token(t) -> str:
    shown = html.escape(t.shown)
    if t.label is None:
        cls = "mlm-tok special" if t.special else "mlm-tok"
        return f'<span class="{cls}" data-kind="unmasked">{shown}</span>'
    letter = STYLE[t.kind][2]
    label = html.escape(t.label)
    spoken = f"{KIND_NAMES[t.kind]} at position {t.position}, shows {t.shown}, predict {t.label}"
    return (
        f'<span class="mlm-tok sel" data-kind="{t.kind}" style="{_box(t.kind)}" title="{html.escape(spoken)}">'
        f'{shown}<span class="mlm-label" aria-hidden="true">{letter} → {label}</span>'
        f'<span class="mlm-sr">({html.escape(spoken)})</span></span>'
    )


def counts_frame(result: MaskPreview) -> pd.DataFrame:
    expected = result.config.effective_split()
    rows = []
    # "unmasked" counts every position left alone, [CLS]/[SEP] too; the rate line counts maskable
    # tokens only, so the table splits them and its rows add up to what that line says.
    never = result.counts["unmasked"] - (result.eligible - result.selected)
    for kind in KINDS:
        n = result.counts[kind] - (never if kind == "unmasked" else 0)
        share = f"{100 * n / result.selected:.1f}%" if kind != "unmasked" and result.selected else ""
        setting = f"{100 * expected[kind]:.0f}%" if kind in expected else ""
        rows.append({"kind": KIND_NAMES[kind], "tokens": n, "share of selected": share, "setting": setting})
    if never:
        rows.append({"kind": "special tokens (never masked)", "tokens": never, "share of selected": "",
                     "setting": ""})
    return pd.DataFrame(rows)


def rate_markdown(result: MaskPreview) -> str:
    return (
        f"**Realised rate: {100 * result.realised_rate:.1f}%** ({result.selected} of {result.eligible} "
        f"maskable tokens selected; setting {100 * result.config.mlm_probability:.0f}%); source: {result.source}. "
        "A single text is a small sample, so the rate swings; the batch statistic below averages 1,000 chunks."
    )


def notices_markdown(notices: list[str]) -> str:
    return "\n".join(f"- ⚠️ {n}" for n in notices)


# ---------------------------------------------------------------- handlers


@user_errors
def on_mask(source, text, model, corpus, chunk_size, chunk_index, strategy, prob, mask, rand, seed,
            progress=gr.Progress()):
    cfg = MaskingConfig.from_inputs(strategy, prob, mask, rand, seed)
    result = run_preview(source, text, model, corpus, chunk_size, chunk_index, cfg, progress)
    return token_html(result), counts_frame(result), rate_markdown(result), notices_markdown(result.notices)


@user_errors
def model_rate(model: str, prob):
    """The model family's own masking rate (ModernBERT: 30%), offered unless the user moved the
    slider off a family default, with the reason under the slider."""
    from engine.architectures import masking_default
    from engine.models import model_type_of

    try:
        rate, reason = masking_default(model_type_of(model))
    except UserError:  # not loadable: Mask will say why
        return gr.skip(), ""
    value = rate if prob in (None, *DEFAULT_MASK_RATES) else prob
    return value, f"Default for this model: **{rate:.0%}**. {html.escape(reason)}"


def on_batch(model, corpus, chunk_size, strategy, prob, mask, rand, seed, progress=gr.Progress()):
    cfg = MaskingConfig.from_inputs(strategy, prob, mask, rand, seed)
    model = (model or "").strip() or default_model_ref()
    chunks, tokenizer = _train_chunks(model, corpus, chunk_size, progress)
    progress(0.9, desc=f"Masking {min(BATCH_CHUNKS, len(chunks['input_ids'])):,} chunks")
    stats = batch_statistics(chunks, tokenizer, cfg, BATCH_CHUNKS)
    summary = (
        f"Masked **{stats.chunks:,} chunks** of {_corpus_name(corpus)} ({stats.eligible:,} maskable tokens, "
        f"{stats.selected:,} selected) with seed {cfg.seed}.\n\n{NOISE_NOTE}"
    )
    notes = notices_markdown(stats.notices)
    return pd.DataFrame(stats.rows()), summary + ("\n\n" + notes if notes else "")


@user_errors
def on_random_chunk(model, corpus, chunk_size, progress=gr.Progress()):
    model = (model or "").strip() or default_model_ref()
    chunks, _ = _train_chunks(model, corpus, chunk_size, progress)
    return random.randrange(int(chunks["input_ids"].shape[0]))


def split_status(strategy, mask, rand) -> tuple[float, str]:
    """The kept share (the rest) and a live message: what is wrong with the split, or the
    whole-word caveat. Runs on every slider move, so it reports instead of raising."""
    try:
        cfg = MaskingConfig.from_inputs(strategy, 0.15, mask, rand, 0)
    except UserError as exc:
        return 0.0, f"⚠️ **Invalid split:** {exc}"
    message = f"ℹ️ {WHOLE_WORD_UI}" if cfg.whole_word_mask else ""
    return round(cfg.keep_prob, 4), message


# transformers 5.23's DataCollatorForLanguageModeling sets mask_replace_prob to 1 and
# random_replace_prob to 0 when whole_word_mask is on: the sliders show that instead of
# offering shares the collator would ignore.
WHOLE_WORD_UI = ("Whole-word masking: every selected word is shown as [MASK] (the collator fixes the [MASK] "
                 "share at 1), so the random and kept shares are 0 and the sliders are locked.")


def strategy_changed(strategy: str):
    """Sliders that tell the truth: locked at 1/0/0 for whole-word, back to 80/10/10 for token-level."""
    words = strategy == "whole_word"
    mask, rand = (1.0, 0.0) if words else (0.8, 0.1)
    return (gr.Slider(value=mask, interactive=not words), gr.Slider(value=rand, interactive=not words),
            round(1 - mask - rand, 4), f"ℹ️ {WHOLE_WORD_UI}" if words else "")


@user_errors
def mask_preview(
    text: str = DEFAULT_TEXT,
    strategy: str = "token",
    mlm_probability: float = 0.15,
    mask_replace_prob: float = 0.8,
    random_replace_prob: float = 0.1,
    seed: int = 42,
    model: str = "",
    source: str = "text",
    corpus: str = "imdb",
    chunk_index: int = 0,
    chunk_size: int = 128,
) -> dict:
    """Mask a text (or a chunk of a corpus) exactly as DataCollatorForLanguageModeling does.

    Inputs: text; strategy "token" or "whole_word"; mlm_probability in (0, 1); mask_replace_prob
    and random_replace_prob in [0, 1] with a sum of at most 1 (the rest is kept unchanged); seed
    (same seed, same masks); model ("" = the default: "bundled" offline); source "text" or
    "chunk" (then corpus: "imdb", "rotten_tomatoes" or a stored corpus's id from /list_corpora;
    chunk_index and chunk_size pick a chunk of its train split).
    Output: {"tokens": [{"position", "original", "shown", "kind" (unmasked | mask | random |
    kept), "label" (the token to predict, or null), "special"}], "counts": {kind: n},
    "eligible", "selected", "realised_rate", "expected": {"rate", "mask", "random", "kept"},
    "config", "source", "notices": [str]}. Bad input returns an error with a message.
    """
    cfg = MaskingConfig.from_inputs(strategy, mlm_probability, mask_replace_prob, random_replace_prob, seed)
    return run_preview(source, text, model, corpus, chunk_size, chunk_index, cfg).to_dict()


# ---------------------------------------------------------------- layout


def render() -> None:
    gr.Markdown(
        "### What the model is asked to predict\n"
        "The data collator picks each token with the masking probability; of the picked tokens it shows "
        "`[MASK]` for most, a random token for some and leaves the rest unchanged. The model must predict "
        "the original token at every picked position. Everything here runs transformers' "
        "`DataCollatorForLanguageModeling` itself."
    )
    with gr.Row():
        with gr.Column(scale=2):
            source = gr.Radio([("My text", "text"), ("A chunk of a corpus", "chunk")],
                              value="text", label="Source")
            text = gr.Textbox(DEFAULT_TEXT, lines=4, label="Text to mask", elem_id="mask-text")
            with gr.Row():
                corpus = corpus_picker.render("Corpus for chunks and the batch statistic", elem_id="mask-corpus")
                chunk_size = gr.Number(128, precision=0, label="Chunk size (tokens)", minimum=8)
            with gr.Row(visible=False) as chunk_box:
                chunk_index = gr.Number(0, precision=0, label="Chunk number (train split)", minimum=0)
                pick = gr.Button("Random chunk")
            choices = list(dict.fromkeys([default_model_ref(), BUNDLED, ONLINE_DEFAULT]))
            model = gr.Dropdown(choices, value=default_model_ref(), allow_custom_value=True,
                                label="Model (its tokenizer and [MASK] token): bundled, a folder or a Hub id")
        with gr.Column(scale=2):
            strategy = gr.Radio([("Token-level", "token"), ("Whole-word", "whole_word")], value="token",
                                label="Strategy", elem_id="mask-strategy")
            prob = gr.Slider(0.01, 0.99, 0.15, step=0.01, label="Masking probability", elem_id="mask-prob")
            rate_reason = gr.Markdown(elem_id="mask-rate-reason")
            with gr.Row():
                mask = gr.Slider(0, 1, 0.8, step=0.05, label="[MASK] share", elem_id="mask-share-mask")
                rand = gr.Slider(0, 1, 0.1, step=0.05, label="Random share", elem_id="mask-share-random")
                keep = gr.Slider(0, 1, 0.1, step=0.05, label="Kept share (the rest)", interactive=False)
            split_msg = gr.Markdown(elem_id="mask-split-msg")
            with gr.Row():
                seed = gr.Number(42, precision=0, label="Seed", minimum=0)
                reroll = gr.Button("Re-roll (new seed)")
            run = gr.Button("Mask", variant="primary", elem_id="mask-run")
    notices = gr.Markdown(elem_id="mask-notices")
    view = gr.HTML("<p>Press <b>Mask</b> to see the collator's output.</p>", css_template=CSS, elem_id="mask-view")
    rate = gr.Markdown(elem_id="mask-rate")
    counts = table("Counts per kind", ["kind", "tokens", "share of selected", "setting"])

    gr.Markdown(f"### Batch statistic\nMask {BATCH_CHUNKS:,} chunks of the corpus above with these settings and "
                "compare the realised rates with the settings.")
    batch_btn = gr.Button("Batch statistics (1,000 chunks)", elem_id="mask-batch")
    batch_table = gr.Dataframe(pd.DataFrame(columns=BATCH_COLUMNS), label="Settings vs realised", interactive=False)
    batch_note = gr.Markdown()
    objectives.render(text, model, corpus, prob, seed, (source, chunk_size, chunk_index), objectives_text)

    source.change(lambda s: (gr.update(visible=s == "chunk"), gr.update(visible=s == "text")), source,
                  [chunk_box, text], api_visibility="private")
    strategy.change(strategy_changed, strategy, [mask, rand, keep, split_msg], api_visibility="private",
                    concurrency_limit=None)
    for widget in (mask, rand):
        widget.change(split_status, [strategy, mask, rand], [keep, split_msg],
                      api_visibility="private", concurrency_limit=None)
    model.change(model_rate, [model, prob], [prob, rate_reason], api_visibility="private")
    mask_inputs = [source, text, model, corpus, chunk_size, chunk_index, strategy, prob, mask, rand, seed]
    mask_outputs = [view, counts, rate, notices]
    run.click(on_mask, mask_inputs, mask_outputs, api_visibility="private")
    reroll.click(lambda: random.randrange(2**31), None, seed, api_visibility="private").then(
        on_mask, mask_inputs, mask_outputs, api_visibility="private")
    pick.click(on_random_chunk, [model, corpus, chunk_size], chunk_index, api_visibility="private").success(
        on_mask, mask_inputs, mask_outputs, api_visibility="private")
    batch_btn.click(on_batch, [model, corpus, chunk_size, strategy, prob, mask, rand, seed],
                    [batch_table, batch_note], api_visibility="private")
    gr.api(mask_preview, api_name="mask_preview")
