"""Compare tab: the model panel and fill-mask, then base vs finished runs side by side.

Public API: `/fill_mask` (one model, top-k per mask) and `/compare` (up to four models).
A link `?compare=<run>,<run>&text=...` opens the tab's comparison as it was shared.
"""

from __future__ import annotations

import html
import tempfile

import gradio as gr
import pandas as pd

from components import corpus_picker, word_recall
from components.common import piece_marks, table, user_errors
from components.compare_plots import columns_html, downstream_figure, fill_mask_figure, perplexity_figure
from components.probe_payoff import payoff_frame, verdict_markdown
from engine.compare import (
    MAX_TOP_K,
    PRESETS,
    ProbeConfig,
    View,
    downstream_with_payoffs,
    fill_mask,
    human_bytes,
    normalize,
    result_rows,
    shared_cache,
)
from engine.compare import side_by_side as cmp
from engine.data import store
from engine.errors import UserError
from engine.models import ModelInfo, default_model_ref, tokenization_view
from engine.numbers import whole

COURSE_SIZES = "the course contrasts DistilBERT's 67M with BERT-base's 110M"


# ---------------------------------------------------------------- model panel


def info_markdown(info: ModelInfo) -> str:
    text = f"**{info.name}** ({info.model_type}): **{info.parameters / 1e6:.1f}M parameters** ({COURSE_SIZES})."
    if not info.head_trained:
        text += f"\n\n**Note:** {info.note} Fine-tune it on the Train tab, then compare here."
    return text


def info_frame(view: View) -> pd.DataFrame:
    i = view.info
    rows = [("parameters", f"{i.parameters / 1e6:.1f}M ({i.parameters:,})"), ("layers", i.layers),
            ("hidden size", i.hidden_size), ("attention heads", i.heads), ("vocabulary", f"{i.vocab_size:,}"),
            ("max length (tokens)", i.max_length), ("mask token", i.mask_token),
            ("MLM head", "trained" if i.head_trained else "untrained until fine-tuned"),
            ("memory (weights)", human_bytes(view.memory_bytes))]
    return pd.DataFrame([(k, str(v)) for k, v in rows], columns=["property", "value"])


def tokens_frame(view: View, text: str) -> pd.DataFrame:
    try:
        text, _ = normalize(text, view.tokenizer.mask_token)
    except UserError:
        text = (text or "")[:5_000]  # the tokenization view needs no mask
    return pd.DataFrame(tokenization_view(view.tokenizer, text, view.info.max_length))


def _model(ref: str | None) -> View:
    return shared_cache().get((ref or "").strip() or default_model_ref())


@user_errors
def load_model(ref: str, text: str):
    with shared_cache().lock:  # no other request may evict the view between loading and use
        view = _model(ref)
        return info_markdown(view.info), info_frame(view), tokens_frame(view, text)


def panel_on_load(ref: str, text: str):
    """The model panel filled when the page opens; a model that cannot load says so in place."""
    try:
        return load_model.__wrapped__(ref, text)
    except UserError as exc:
        return f"**Model not loaded:** {html.escape(str(exc), quote=False)}", pd.DataFrame(), pd.DataFrame()


@user_errors
def run_fill_mask(ref: str, text: str, top_k: float):
    """/fill_mask: top-k per mask for one model, as a bar chart and a table."""
    cache = shared_cache()
    with cache.lock:  # no other request may evict the view between loading and use
        view = _model(ref)
        with cache.activate(view) as model:
            result = fill_mask(model, view.tokenizer, text, top_k)  # check_top_k parses it
    notices = list(result.notices)
    if not view.info.head_trained:
        notices.insert(0, "MLM head untrained until fine-tuned: these are random guesses, not a pretrained MLM's.")
    tokens = tokens_frame(view, text)
    marks = piece_marks([*tokens.get("token", []), *(r["token"] for r in result_rows(result))])
    if marks:  # "Ġthe" in the tables reads as a typo to whoever has only met WordPiece
        notices.append(f"Tokens: {marks}.")
    title = view.info.name + ("" if view.info.head_trained else " (untrained head)")
    notice = "\n".join(f"- {html.escape(n, quote=False)}" for n in notices)
    return (info_markdown(view.info), notice, fill_mask_figure(result, title),
            pd.DataFrame(result_rows(result)), tokens)


# ---------------------------------------------------------------- comparing


def _page_url(request: gr.Request | None) -> str:
    headers = dict(getattr(request, "headers", {}) or {}) if request else {}
    return str(headers.get("referer", "") or "").split("?", 1)[0]


def _compare_outputs(models, text, top_k, ref, page_url: str):
    result = cmp.compare(list(models or []), text, top_k, ref)
    notices = "\n".join(f"- {n}" for n in result.notices)
    link = cmp.build_link(cmp.CompareLink(tuple(models), text), page_url)
    memory = pd.DataFrame(shared_cache().memory_rows())
    return notices, columns_html(result), result.moves_frame(), memory, link


@user_errors
def run_compare(models: list[str], text: str, top_k: float, ref: str, request: gr.Request = None):
    """/compare: every chosen model's top-k per mask, the biggest moves against the base, and a link."""
    return _compare_outputs(models, text, top_k, ref, _page_url(request))


@user_errors
def run_prompts(models: list[str], prompts: str, ref: str):
    long = cmp.prompt_table(list(models or []), prompts, ref)
    with tempfile.NamedTemporaryFile("w", suffix=".csv", prefix="prompt-table-", delete=False) as f:
        long.to_csv(f, index=False)
    skipped = "\n".join(f"- ⚠️ {html.escape(line, quote=False)}" for line in long.attrs.get("skipped", []))
    return cmp.wide_prompt_table(long), f.name, skipped


@user_errors
def run_perplexity(models: list[str], ref: str, max_rows: float, corpus_id: str = ""):
    """Perplexity of each model on one masked eval set: the picked corpus's test split ("" = the first
    run's own eval set, as before corpora could be picked)."""
    frame = cmp.perplexity_table(list(models or []), ref, max_rows=max_rows, corpus_id=corpus_id or None)
    chunks = int(frame["eval_chunks"].iloc[0])
    where = (f"the test split of {html.escape(store.get(corpus_id).name)}, masked once (15%, seed 42)"
             if corpus_id else f"run {frame.attrs['eval_run']}'s eval_set.npz")
    note = (f"Eval set: {where}, first {chunks} chunks. Recorded figures come from each run's summary.json "
            "(its own eval set).")
    return frame, perplexity_figure(frame), note


@user_errors
def run_downstream(models: list[str], ref: str, n_reviews: float, n_seeds: float, corpus_id: str = "imdb",
                   progress=gr.Progress()):
    progress(0.1, desc="Encoding the labelled texts with each model")
    cfg = ProbeConfig(n_reviews=whole(n_reviews, "Number of reviews"),
                      seeds=tuple(range(whole(n_seeds, "Number of seeds"))), source=corpus_id or "imdb")
    frame, payoffs = downstream_with_payoffs(list(models or []), ref, cfg)
    return frame, downstream_figure(frame), payoff_frame(payoffs), verdict_markdown(payoffs)


def refresh_choices(current: list[str] | None):
    choices = cmp.run_choices()
    known = {v for _, v in choices}
    return gr.update(choices=choices, value=[m for m in (current or []) if m in known] or [cmp.BASE])


def on_load(ref: str, top_k: float, request: gr.Request):
    """Fill the run list; for a `?compare=` link, pick its models and text and show the comparison."""
    params = dict(getattr(request, "query_params", {}) or {})
    link = cmp.parse_link(params)
    choices = cmp.run_choices()
    empty = ("", "", pd.DataFrame(), pd.DataFrame(), "")
    if link is None:
        return (gr.update(choices=choices), gr.update(), *empty)
    text = link.text or PRESETS[0]
    try:
        cmp.check_link(link)
        outputs = _compare_outputs(list(link.models), text, top_k, ref, _page_url(request))
    except UserError as exc:
        return (gr.update(choices=choices), gr.update(value=text), f"**This link cannot be shown:** {exc}",
                *empty[1:])
    return (gr.update(choices=choices, value=list(link.models)), gr.update(value=text), *outputs)


# ---------------------------------------------------------------- layout


def render(demo: gr.Blocks, tab: gr.Tab | None = None) -> None:
    gr.Markdown("Fill-mask with one model, then the base and your finished runs side by side: "
                "what did domain adaptation change?")
    with gr.Row():
        with gr.Column(scale=1):
            gr.Markdown("### Model")
            model_ref = gr.Textbox(value=default_model_ref(), label="Model: Hub id, local folder or 'bundled'")
            load_btn = gr.Button("Load model")
            info_md = gr.Markdown(elem_id="model-info")
            info_df = table("Model panel", ["property", "value"], wrap=True)
        with gr.Column(scale=2):
            gr.Markdown("### Fill-mask")
            preset = gr.Dropdown(PRESETS, value=None, label="Preset from the chapters", elem_id="fill-preset")
            text = gr.Textbox(PRESETS[0], lines=2, label="Text with [MASK] or <mask>", elem_id="fill-text")
            top_k = gr.Slider(1, MAX_TOP_K, value=5, step=1, label="top-k")
            fill_btn = gr.Button("Fill mask", variant="primary", elem_id="fill-btn")
            fill_notice = gr.Markdown(elem_id="fill-notice")
            fill_plot = gr.Plot(label="Top-k predictions per mask", elem_id="fill-plot")
            fill_df = table("Predictions", ["mask", "rank", "token", "probability", "sequence"], elem_id="fill-table")
    tokens_df = table("Tokenization: tokens, ids, attention mask", ["position", "token", "id", "attention_mask"],
                      max_height=260)

    gr.Markdown("### Compare models side by side")
    with gr.Row():
        models = gr.Dropdown(cmp.run_choices(), value=[cmp.BASE], multiselect=True, allow_custom_value=True,
                             max_choices=cmp.MAX_MODELS, label="Models (the base and up to four finished runs)",
                             elem_id="compare-models", scale=4)
        refresh_btn = gr.Button("Refresh runs", scale=1)
    cmp_btn = gr.Button("Compare", variant="primary", elem_id="compare-btn")
    cmp_notice = gr.Markdown(elem_id="compare-notice")
    cmp_html = gr.HTML(elem_id="compare-columns")
    moves_df = table("Biggest moves against the base (union of top-k tokens)",
                     ["model", "mask", "token", "p_base", "p_model", "change"])
    link_box = gr.Textbox(label="Link to this view", buttons=["copy"], interactive=False, elem_id="compare-link")
    memory_df = table("Loaded models in memory (LoRA adapters count their own weights)",
                      ["model", "kind", "memory", "bytes", "note"])

    with gr.Accordion("Prompt list: several prompts x each model", open=False):
        prompts = gr.Textbox("\n".join(PRESETS), lines=5, label="Prompts, one per line")
        prompts_btn = gr.Button("Run prompt list")
        prompts_skipped = gr.Markdown(elem_id="compare-prompts-skipped")
        prompts_df = table("Top-1 (probability) per prompt and model", ["prompt", "mask"])
        prompts_csv = gr.File(label="CSV download (one row per prompt, mask and model)")
    with gr.Accordion("Perplexity on the same eval set", open=False):
        ppl_corpus = corpus_picker.render("Eval set: a corpus's test split", elem_id="compare-ppl-corpus",
                                          value="", extra=[("the first picked run's own eval set", "")])
        max_rows = gr.Slider(16, 2048, value=256, step=16, label="Eval chunks to score")
        ppl_btn = gr.Button("Compute perplexity")
        ppl_note = gr.Markdown()
        ppl_df = table("Perplexity per model", ["model", "perplexity", "loss", "recorded_before", "recorded_after",
                                                    "eval_chunks"])
        ppl_plot = gr.Plot(label="Perplexity")
    word_recall.render(models, model_ref)
    with gr.Accordion("Downstream check: a corpus's labels from frozen features", open=False):
        ds_corpus = corpus_picker.render("Labelled corpus (its label column)", elem_id="compare-ds-corpus")
        with gr.Row():
            n_reviews = gr.Slider(40, 2000, value=400, step=20, label="Labelled IMDb reviews")
            n_seeds = gr.Slider(1, 10, value=3, step=1, label="Seeds (train/test splits)")
        ds_btn = gr.Button("Run downstream check")
        ds_df = table("Accuracy per model", ["model", "accuracy_mean", "accuracy_std", "accuracies", "n_train",
                                              "n_test"])
        ds_plot = gr.Plot(label="Accuracy")
        ds_verdict = gr.Markdown(elem_id="downstream-verdict")
        ds_payoff = table("Each run against the base, paired by seed (points)",
                          ["model", "n_seeds", "base", "run", "difference", "low", "high", "verdict"])

    preset.change(lambda p: p or gr.update(), preset, text, api_visibility="private")
    load_btn.click(load_model, [model_ref, text], [info_md, info_df, tokens_df], api_name="model_info")
    fill_outputs = [info_md, fill_notice, fill_plot, fill_df, tokens_df]
    fill_btn.click(run_fill_mask, [model_ref, text, top_k], fill_outputs, api_name="fill_mask")
    cmp_outputs = [cmp_notice, cmp_html, moves_df, memory_df, link_box]
    cmp_btn.click(run_compare, [models, text, top_k, model_ref], cmp_outputs, api_name="compare")
    refresh_btn.click(refresh_choices, models, models, api_visibility="private")
    prompts_btn.click(run_prompts, [models, prompts, model_ref], [prompts_df, prompts_csv, prompts_skipped],
                      api_name="compare_prompts")
    ppl_btn.click(run_perplexity, [models, model_ref, max_rows, ppl_corpus], [ppl_df, ppl_plot, ppl_note],
                  api_name="compare_perplexity")
    ds_btn.click(run_downstream, [models, model_ref, n_reviews, n_seeds, ds_corpus],
                 [ds_df, ds_plot, ds_payoff, ds_verdict], api_name="downstream_check")
    if tab is not None:  # runs finished since the page loaded appear without pressing Refresh
        tab.select(refresh_choices, models, models, api_visibility="private")
    demo.load(panel_on_load, [model_ref, text], [info_md, info_df, tokens_df], api_visibility="private")
    demo.load(on_load, [model_ref, top_k], [models, text, *cmp_outputs], api_visibility="private")
