"""The objectives panel of the Masking tab: the textbook's MLM, CLM and NSP (§3.2) side by side.

The Masking tab's text and model feed it; engine.objectives does the work. Only MLM is trained
in this app: CLM and NSP are explanations, and the panel says so.
"""

from __future__ import annotations

import html

import gradio as gr
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from components.common import piece_marks, table, user_errors
from engine.data import config_for, load_corpus
from engine.masking import MaskingConfig
from engine.models import cached_tokenizer, default_model_ref, max_length_of
from engine.objectives import COMPARISON, LOSSES, MAX_MATRIX_TOKENS, NSP_PAIRS, Objectives, nsp_pairs, objectives

NSP_DOCS = 2000  # documents the NSP sentences are drawn from (Rotten Tomatoes: ~1 in 6 has two sentences)
EXPLAIN_ONLY = ("**Explanation only:** this app trains MLM. CLM and NSP are shown to compare, "
                "not offered as training modes.")


def attention_figure(tokens: list[str], mask: np.ndarray, title: str) -> go.Figure:
    """The attention mask as a matrix: row = the position that looks, column = the position it may see."""
    labels = [f"{i} {t}" for i, t in enumerate(tokens)]  # numbered: a repeated token must not merge axis rows
    fig = go.Figure(go.Heatmap(
        z=mask, x=labels, y=labels, zmin=0, zmax=1, showscale=False, xgap=1, ygap=1,
        colorscale=[[0, "#e5e7eb"], [1, "#2563eb"]],
        hovertemplate="%{y} may see %{x}: %{z}<extra></extra>",
    ))
    fig.update_layout(title=title, height=460, margin=dict(l=90, r=10, t=50, b=90),
                      xaxis=dict(title="may attend to (key)", tickangle=-60),
                      yaxis=dict(title="position (query)", autorange="reversed"))
    return fig


def mlm_html(result: Objectives) -> str:
    """Tokens in order; the ones carrying the loss boxed, with what the model sees and must predict."""
    parts = []
    for t in result.mlm.tokens:
        if t.label is None:
            parts.append(f'<span class="obj-tok">{html.escape(t.shown)}</span>')
        else:
            parts.append(f'<span class="obj-tok obj-loss" data-loss="1" title="predict {html.escape(t.label)}">'
                         f'{html.escape(t.shown)}<sub>→{html.escape(t.label)}</sub></span>')
    n, k = result.positions, len(result.mlm_loss_positions)
    marks = piece_marks(t.original for t in result.mlm.tokens)
    return (f'<p>Loss on <b>{k} of {n}</b> positions (boxed: shown → the original to predict); '
            f'every position sees the whole text.{" " + html.escape(marks) + "." if marks else ""}</p>'
            f'<div class="obj-tokens">{"".join(parts)}</div>')


def clm_frame(result: Objectives, rows: int = 12) -> pd.DataFrame:
    steps = result.clm[:rows]
    return pd.DataFrame({"position": [s.position for s in steps],
                         "sees (its last 8 of tokens 0..i)": [" ".join(s.context[-8:]) for s in steps],
                         "predicts (token i+1)": [s.target for s in steps]})


def nsp_frame(pairs) -> pd.DataFrame:
    # The label first: with long sentences it is the column a reader must never have to scroll to.
    return pd.DataFrame([{"label": p.label, "sentence A": p.sentence_a, "sentence B": p.sentence_b,
                          "tokens A / B": f"{p.tokens_a} / {p.tokens_b}"} for p in pairs])


def comparison_markdown(result: Objectives | None = None) -> str:
    head = "| | MLM (BERT type) | CLM (GPT type) |\n|---|---|---|\n"
    rows = "".join(f"| {r['feature']} | {r['MLM (BERT type)']} | {r['CLM (GPT type)']} |\n" for r in COMPARISON)
    counted = "" if result is None else (
        f"On this text MLM's loss came from **{len(result.mlm_loss_positions)} of {result.positions}** positions, "
        f"CLM's from **{len(result.clm)}**. ")
    note = ("\n" + counted + "The textbook's *training efficiency* row means that MLM's context covers every "
            "token; per sequence, though, MLM learns from the ~15% it masks, while CLM learns at every position "
            "in one pass (it *generates* one token at a time). NSP is not in the textbook's table: a sentence-pair "
            "classification that BERT trained next to MLM and later models (RoBERTa) dropped.")
    return "#### The textbook's comparison (§3.2)\n" + head + rows + note


@user_errors
def show_objectives(text, model, corpus, prob, seed):
    model = (model or "").strip() or default_model_ref()
    tokenizer = cached_tokenizer(model)
    cfg = MaskingConfig.from_inputs("token", prob, 0.8, 0.1, seed)
    result = objectives(text, tokenizer, cfg, max_length_of(model))
    docs = load_corpus(config_for(corpus or "imdb"))["train"]  # the Masking tab's corpus, stored ones too
    texts = docs.select(range(min(NSP_DOCS, len(docs))))[:]["text"]
    pairs = nsp_pairs(texts, tokenizer, NSP_PAIRS, int(seed or 0))
    n = len(result.matrix_tokens)
    cut = f" (first {n} tokens)" if n == MAX_MATRIX_TOKENS else ""
    return (mlm_html(result), attention_figure(result.matrix_tokens, result.bidirectional, f"MLM: bidirectional{cut}"),
            clm_frame(result), attention_figure(result.matrix_tokens, result.causal, f"CLM: causal mask{cut}"),
            nsp_frame(pairs), comparison_markdown(result))


CSS = """
.obj-tokens { display:flex; flex-wrap:wrap; gap:4px 3px; }
.obj-tok { font-family:ui-monospace, monospace; padding:1px 3px; border-radius:3px; }
.obj-loss { background:#fcd34d; color:#111; border:2px solid #444; }
"""


def render(text, model, corpus, prob, seed, chunk_inputs=(), text_of=None) -> None:
    """The panel, below the Masking tab's own widgets; it reads their text, model, corpus, rate and seed.
    text_of(*chunk_inputs, text, model, corpus): the text to set instead (the Masking tab's picked chunk),
    passed in so this module never imports the tab that imports it."""
    with gr.Accordion("Objectives: MLM, CLM and NSP on the same text (textbook §3.2)", open=False,
                      elem_id="objectives"):
        gr.Markdown(EXPLAIN_ONLY)
        go_btn = gr.Button("Show the three objectives", elem_id="objectives-run")
        with gr.Row():
            with gr.Column():
                gr.Markdown("#### MLM: masked language modelling (what this app trains)")
                gr.Markdown(f"$${LOSSES['MLM']}$$")
                mlm = gr.HTML(css_template=CSS, elem_id="objectives-mlm")
                mlm_att = gr.Plot(label="Bidirectional attention: every position sees every position")
            with gr.Column():
                gr.Markdown("#### CLM: causal language modelling (explanation only)")
                gr.Markdown(f"$${LOSSES['CLM']}$$")
                clm = table("Every position predicts the next token",
                            ["position", "sees (its last 8 of tokens 0..i)", "predicts (token i+1)"],
                            elem_id="objectives-clm")
                clm_att = gr.Plot(label="Causal attention mask: no position sees the future")
        gr.Markdown("#### NSP: next sentence prediction (BERT's second objective; explanation only)")
        gr.Markdown(f"$${LOSSES['NSP']}$$")
        nsp = table("Sentence pairs from the corpus: half IsNext, half NotNext",
                    ["label", "sentence A", "sentence B", "tokens A / B"], wrap=True,
                    column_widths=["10%", "40%", "40%", "10%"], elem_id="objectives-nsp")
        comparison = gr.Markdown(comparison_markdown(), elem_id="objectives-table")
    @user_errors
    def show(text, model, corpus, prob, seed, *chunk):
        return show_objectives.__wrapped__(text_of(*chunk, text, model, corpus) if text_of else text, model, corpus,
                                           prob, seed)

    go_btn.click(show, [text, model, corpus, prob, seed, *chunk_inputs],
                 [mlm, mlm_att, clm, clm_att, nsp, comparison], api_visibility="private")
