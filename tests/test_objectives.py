"""engine.objectives: the textbook's MLM, CLM and NSP views (§3.2) on one text, and the panel's pure views."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import UserError
from engine.masking import MaskingConfig
from engine.objectives import (
    COMPARISON,
    IS_NEXT,
    LOSSES,
    MAX_MATRIX_TOKENS,
    NOT_NEXT,
    attention_masks,
    clm_steps,
    nsp_pairs,
    objectives,
    sentences,
)

TEXT = "The film was great. The cast did fine work, and the music was lovely."


def test_attention_masks_are_full_and_lower_triangular():
    full, causal = attention_masks(5)
    assert full.shape == causal.shape == (5, 5) and full.all()
    assert np.array_equal(causal, np.tril(np.ones((5, 5))))
    assert causal[0].sum() == 1 and causal[-1].sum() == 5  # the first sees itself, the last sees all
    assert not np.triu(causal, k=1).any()  # no position sees the future


def test_clm_every_position_predicts_the_next_token():
    steps = clm_steps(["a", "b", "c", "d"])
    assert [(s.context, s.target) for s in steps] == [(["a"], "b"), (["a", "b"], "c"), (["a", "b", "c"], "d")]


def test_mlm_view_is_the_collator_and_carries_the_loss_only_where_masked(tokenizer):
    result = objectives(TEXT, tokenizer, MaskingConfig(mlm_probability=0.3, seed=3))
    loss = result.mlm_loss_positions
    assert loss and len(loss) < result.positions
    assert all(not result.mlm.tokens[i].special for i in loss)  # never [CLS]/[SEP]
    again = objectives(TEXT, tokenizer, MaskingConfig(mlm_probability=0.3, seed=3))
    assert again.mlm_loss_positions == loss  # seeded like the Masking tab's preview
    content = [t.original for t in result.mlm.tokens if not t.special]
    assert len(result.clm) == len(content) - 1 == result.positions - 1  # CLM: a loss at every position
    assert result.matrix_tokens == content[:MAX_MATRIX_TOKENS]
    n = len(result.matrix_tokens)
    assert result.bidirectional.shape == result.causal.shape == (n, n)


def test_matrices_stop_at_a_readable_size(tokenizer):
    result = objectives(TEXT * 6, tokenizer, MaskingConfig(seed=0))
    assert len(result.matrix_tokens) == MAX_MATRIX_TOKENS and len(result.clm) > MAX_MATRIX_TOKENS


def test_empty_text_is_a_user_error(tokenizer):
    with pytest.raises(UserError, match="Type a text"):
        objectives("  ", tokenizer, MaskingConfig())


def test_sentences_drop_review_markup_and_fragments():
    assert sentences("One two three.<br /><br />Four five six! Ok. Seven eight nine?") == [
        "One two three.", "Four five six!", "Seven eight nine?"]


def _docs():
    return [f"Doc {d} sentence one is here. Doc {d} sentence two is here. Doc {d} sentence three is here."
            for d in range(10)]


def test_nsp_pairs_are_half_is_next_and_drawn_as_bert_did(tokenizer):
    pairs = nsp_pairs(_docs(), tokenizer, n_pairs=8, seed=1)
    assert sorted(p.label for p in pairs) == [IS_NEXT] * 4 + [NOT_NEXT] * 4
    for p in pairs:
        doc_a, doc_b = p.sentence_a.split()[1], p.sentence_b.split()[1]
        if p.label == IS_NEXT:  # B is the sentence right after A in the same document
            assert doc_a == doc_b and sentences(_docs()[int(doc_a)]).index(p.sentence_b) == \
                sentences(_docs()[int(doc_a)]).index(p.sentence_a) + 1
        else:
            assert doc_a != doc_b
        assert p.tokens_a > 2 and p.tokens_b > 1  # [CLS] A [SEP] | B [SEP] from the real tokenizer
    assert nsp_pairs(_docs(), tokenizer, n_pairs=8, seed=1) == pairs


def test_nsp_needs_two_documents_with_two_sentences(tokenizer):
    with pytest.raises(UserError, match="two documents"):
        nsp_pairs(["Just one sentence here.", "Another lonely sentence."], tokenizer)


def test_losses_and_the_textbooks_table():
    assert "masked" in LOSSES["MLM"] and "x_{i-1}" in LOSSES["CLM"] and "NotNext" in LOSSES["NSP"]
    assert [r["feature"] for r in COMPARISON] == [
        "context", "strengths", "attention", "training efficiency", "representative models"]
    assert "RoBERTa" in COMPARISON[-1]["MLM (BERT type)"] and "GPT-2" in COMPARISON[-1]["CLM (GPT type)"]


def test_panel_views(tokenizer):
    from components.objectives import attention_figure, clm_frame, comparison_markdown, mlm_html, nsp_frame

    result = objectives(TEXT, tokenizer, MaskingConfig(mlm_probability=0.3, seed=3))
    assert mlm_html(result).count('data-loss="1"') == len(result.mlm_loss_positions)
    assert list(clm_frame(result).columns) == ["position", "sees (its last 8 of tokens 0..i)", "predicts (token i+1)"]
    fig = attention_figure(result.matrix_tokens, result.causal, "CLM")
    assert len(set(fig.data[0].y)) == len(result.matrix_tokens)  # repeated tokens keep their own rows
    assert "training efficiency" in comparison_markdown(result) and "explanation" not in comparison_markdown()
    assert len(nsp_frame(nsp_pairs(_docs(), tokenizer, 4, 0))) == 4


def test_nsp_pairs_come_from_the_corpus_picked_on_the_masking_tab(tmp_path, monkeypatch):
    """A stored corpus (not only the bundled ones): its own sentences make the pairs."""
    from components.objectives import show_objectives
    from engine.data import store

    monkeypatch.setenv("MLM_CORPORA_DIR", str(tmp_path / "corpora"))
    clauses = [f"The Tenant shall pay rent number {i} monthly. The Landlord shall repair the roof within {i} days. "
               f"Either party may end this lease with notice {i}." for i in range(12)]
    path = tmp_path / "clauses.csv"
    path.write_text("text\n" + "\n".join(f'"{c}"' for c in clauses))
    corpus_id = store.store_upload(str(path), "text", "").corpus_id
    *_, nsp, _table = show_objectives.__wrapped__("The lease begins today.", "bundled", corpus_id, 0.15, 1)
    sentences = " ".join(nsp["sentence A"]) + " ".join(nsp["sentence B"])
    assert "Tenant" in sentences or "Landlord" in sentences or "lease" in sentences
    assert "film" not in sentences.lower() and "movie" not in sentences.lower()


def test_the_panel_sets_the_picked_chunk_when_the_masking_tab_shows_one():
    from components.masking import objectives_text
    from engine.models import cached_tokenizer

    typed = objectives_text("text", 128, 0, "My own words.", "bundled", "imdb")
    chunk = objectives_text("chunk", 64, 3, "My own words.", "bundled", "imdb")
    assert typed == "My own words." and chunk != typed
    assert len(cached_tokenizer("bundled")(chunk, add_special_tokens=False)["input_ids"]) in range(58, 66)
    with pytest.raises(UserError, match="out of range"):
        objectives_text("chunk", 64, 10**9, "", "bundled", "imdb")
