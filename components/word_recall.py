"""The Compare tab's domain-word recall section: do the chosen models fill in the corpus's shredded words?

engine/compare/recall.py does the work; this lays out its settings and its table. The corpus
picker lists the stored corpora (bundled ones first); the held-out text is its test split.
"""

from __future__ import annotations

import gradio as gr

from components.common import table, user_errors
from engine.compare import RecallConfig, word_recall
from engine.data import CorpusConfig, store
from engine.numbers import whole

NOTE = ("Each occurrence of a word the tokenizer cuts into pieces (the Dataset tab's list, counted on the train "
        "split) is masked whole in the test split. A word counts as top-1/top-5 only when **every** piece is in "
        "its position's top 1/5 (its rank is its worst piece's); log-probability sums over the pieces.")


def corpus_choices() -> list[tuple[str, str]]:
    return [(f"{c.name} ({c.rows:,})", c.corpus_id) for c in store.list_corpora()]


def corpus_config(corpus_id: str, max_docs) -> CorpusConfig:
    cid = store.get(corpus_id).corpus_id
    source = cid if cid in store.BUNDLED else "stored"
    return CorpusConfig(source=source, corpus_id="" if source == cid else cid,
                        max_docs=whole(max_docs, "Documents to use"))


@user_errors
def run_recall(models: list[str], ref: str, corpus_id: str, max_docs, top_words, max_occurrences):
    cfg = RecallConfig(top_words=whole(top_words, "Words"), max_occurrences=whole(max_occurrences, "Occurrences"))
    frame = word_recall(list(models or []), corpus_config(corpus_id, max_docs), ref, cfg)
    words = ", ".join(frame.attrs["words"][:60])
    return frame, f"{NOTE}\n\nWords scored ({len(frame.attrs['words'])}): {words}"


def render(models: gr.Dropdown, model_ref: gr.Textbox) -> None:
    """The section, wired to the tab's model list and base model."""
    with gr.Accordion("Domain-word recall: the words the tokenizer shreds", open=False):
        with gr.Row():
            corpus = gr.Dropdown(corpus_choices(), value="imdb", label="Corpus (held-out text: its test split)")
            max_docs = gr.Number(2000, label="Documents to use (0 = all)", precision=0, minimum=0)
            top_words = gr.Slider(5, 200, value=50, step=5, label="Shredded words (most frequent)")
            max_occ = gr.Slider(20, 2000, value=300, step=20, label="Occurrences scored (at most)")
        btn = gr.Button("Score word recall")
        note = gr.Markdown(NOTE)
        recall = table("Recall of the true word per model", ["model", "top1", "top5", "mean_rank", "median_rank",
                                                             "mean_log_prob", "occurrences", "words", "note"],
                       elem_id="word-recall")
    btn.click(run_recall, [models, model_ref, corpus, max_docs, top_words, max_occ], [recall, note],
              api_name="word_recall")
