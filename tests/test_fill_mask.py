"""engine.compare.predictions: mask spellings, bad input, multi-mask sequences, agreement with the pipeline."""

from __future__ import annotations

import pytest
import torch

from engine.compare.predictions import (
    MAX_CHARS,
    MAX_MASKS,
    PRESETS,
    fill_mask,
    fill_mask_many,
    fill_sequence,
    normalize,
    result_rows,
)
from engine.errors import UserError
from engine.models import load_mlm


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_mlm(tiny_model_dir)


def test_both_mask_spellings_become_the_models_mask_token():
    text, notices = normalize("a [MASK] b <mask> c [mask]", "[MASK]")
    assert text == "a [MASK] b [MASK] c [MASK]" and notices == []
    text, _ = normalize("a [MASK] b", "<mask>")  # a RoBERTa-style model
    assert text == "a <mask> b"


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_text_says_what_to_type(text):
    with pytest.raises(UserError, match="Type a sentence with at least one \\[MASK\\]"):
        normalize(text, "[MASK]")


def test_text_without_mask_is_refused():
    with pytest.raises(UserError, match="No mask token found"):
        normalize("This is a great movie.", "[MASK]")


def test_too_many_masks_for_the_table():
    with pytest.raises(UserError, match=f"at most {MAX_MASKS}: remove 2"):
        normalize(" ".join(["[MASK]"] * (MAX_MASKS + 2)), "[MASK]")


def test_very_long_text_is_cut_with_a_notice(tiny):
    text = "This is a great [MASK]. " + "word " * 20_000
    assert len(text) >= 100_000
    result = fill_mask(tiny.model, tiny.tokenizer, text, top_k=3)
    assert any(f"only the first {MAX_CHARS:,}" in n for n in result.notices)
    assert len(result.masks) == 1 and len(result.masks[0]) == 3


def test_masks_only_past_the_cut_are_explained():
    text = "word " * 25_000 + "[MASK]"
    with pytest.raises(UserError, match="past the first 5,000 characters"):
        normalize(text, "[MASK]")


def test_mask_past_the_models_max_length_is_dropped_with_a_notice(tiny):
    text = "This is a great [MASK]. " + "movie " * 700 + "[MASK]"
    result = fill_mask(tiny.model, tiny.tokenizer, text, top_k=2)
    assert len(result.masks) == 1
    assert any("masks past the end were dropped" in n for n in result.notices)


@pytest.mark.parametrize("k", [0, MAX_CHARS, "many"])
def test_bad_top_k(tiny, k):
    with pytest.raises(UserError, match="top-k must be"):
        fill_mask(tiny.model, tiny.tokenizer, PRESETS[0], top_k=k)


def test_each_masks_sequence_fills_that_mask(tiny):
    result = fill_mask(tiny.model, tiny.tokenizer, "I love [MASK] learning and [MASK] intelligence.", top_k=3)
    assert len(result.masks) == 2
    for p in result.masks[0]:  # the first mask filled, the second left as it was
        assert p.sequence.endswith(" learning and [MASK] intelligence.") and p.sequence.count("[MASK]") == 1
        assert p.token.removeprefix("##") in p.sequence.split(" learning")[0]
    for p in result.masks[1]:  # the second mask filled (the old bug filled the first one again)
        assert p.sequence.startswith("I love [MASK] learning and") and p.sequence.count("[MASK]") == 1
        assert p.sequence.endswith(f"{p.token.removeprefix('##')} intelligence.")


def test_wordpiece_suffix_joins_its_word():
    assert fill_sequence("a great [MASK] here", "[MASK]", 0, "##s") == "a greats here"
    assert fill_sequence("[MASK] and [MASK]", "[MASK]", 1, "cats") == "[MASK] and cats"


def test_agrees_with_transformers_pipeline(tiny):
    from transformers import pipeline

    pipe = pipeline("fill-mask", model=tiny.model, tokenizer=tiny.tokenizer, device="cpu")
    want = pipe("The capital of France is [MASK].", top_k=5)
    got = fill_mask(tiny.model, tiny.tokenizer, "The capital of France is [MASK].", top_k=5).masks[0]
    assert [p.token_id for p in got] == [w["token"] for w in want]
    assert [p.probability for p in got] == pytest.approx([w["score"] for w in want], rel=1e-4)


def test_probabilities_are_sorted_and_a_distribution(tiny):
    preds = fill_mask(tiny.model, tiny.tokenizer, PRESETS[0], top_k=10).masks[0]
    probs = [p.probability for p in preds]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6


def test_batch_of_prompts_matches_one_at_a_time(tiny):
    prompts = [PRESETS[0], PRESETS[2], "short [MASK]"]
    batch = fill_mask_many(tiny.model, tiny.tokenizer, prompts, top_k=2)
    for prompt, got in zip(prompts, batch):
        one = fill_mask(tiny.model, tiny.tokenizer, prompt, top_k=2)
        assert [[p.token_id for p in m] for m in got.masks] == [[p.token_id for p in m] for m in one.masks]
        for a, b in zip(got.masks, one.masks):
            assert torch.allclose(torch.tensor([p.probability for p in a]), torch.tensor([p.probability for p in b]),
                                  atol=1e-5)


def test_rows_for_the_table(tiny):
    rows = result_rows(fill_mask(tiny.model, tiny.tokenizer, PRESETS[2], top_k=4))
    assert len(rows) == 8 and {r["mask"] for r in rows} == {1, 2} and rows[0]["rank"] == 1
