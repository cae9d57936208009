"""engine.masking: the preview and batch statistic read back what DataCollatorForLanguageModeling did."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.corpus import CorpusConfig, prepare
from engine.errors import UserError
from engine.masking import (
    DEFAULT_TEXT,
    IGNORE,
    KINDS,
    MaskingConfig,
    batch_statistics,
    chunk_row,
    classify,
    mask_rows,
    preview_chunk,
    preview_text,
)


@pytest.fixture(scope="module")
def rt_chunks(tokenizer):
    """Rotten Tomatoes' train split cut into 128-token chunks: 1,639 chunks, tokenized in about a second."""
    chunks = prepare(CorpusConfig(source="rotten_tomatoes"), tokenizer, 128, 512).chunks["train"]
    assert chunks["input_ids"].shape[0] >= 1000
    return chunks


def masks_of(result) -> list[tuple[str, str]]:
    return [(t.kind, t.shown) for t in result.tokens]


# ---------------------------------------------------------------- one text


def test_same_seed_same_masks_and_different_seeds_differ(tokenizer):
    a = preview_text(DEFAULT_TEXT, tokenizer, MaskingConfig(seed=7))
    b = preview_text(DEFAULT_TEXT, tokenizer, MaskingConfig(seed=7))
    c = preview_text(DEFAULT_TEXT, tokenizer, MaskingConfig(seed=8))
    assert masks_of(a) == masks_of(b)
    assert masks_of(a) != masks_of(c)


def test_counts_add_up_and_kinds_match_tokens(tokenizer):
    result = preview_text(DEFAULT_TEXT, tokenizer, MaskingConfig(mlm_probability=0.5, seed=1))
    assert sum(result.counts.values()) == len(result.tokens)
    assert result.selected == result.counts["mask"] + result.counts["random"] + result.counts["kept"]
    assert result.selected > 0
    assert result.eligible == sum(not t.special for t in result.tokens)
    assert result.realised_rate == pytest.approx(result.selected / result.eligible)
    for t in result.tokens:
        if t.kind == "unmasked":
            assert t.label is None and t.shown == t.original
        else:
            assert t.label == t.original and not t.special
        if t.kind == "mask":
            assert t.shown == tokenizer.mask_token
        if t.kind == "random":
            assert t.shown != t.original
        if t.kind == "kept":
            assert t.shown == t.original
    assert result.tokens[0].special and result.tokens[0].label is None  # [CLS] is never selected


def test_classify_reads_the_collator_output():
    original = np.array([[5, 6, 7, 8, 9]])
    shown = np.array([[5, 103, 42, 8, 9]])
    labels = np.array([[IGNORE, 6, 7, 8, IGNORE]])
    kinds = [KINDS[k] for k in classify(original, shown, labels, mask_id=103)[0]]
    assert kinds == ["unmasked", "mask", "random", "kept", "unmasked"]


def test_chunk_preview_uses_the_chunk_tokens(tokenizer, rt_chunks):
    result = preview_chunk(rt_chunks, 3, tokenizer, MaskingConfig(seed=0))
    originals = tokenizer.convert_ids_to_tokens(rt_chunks["input_ids"][3].tolist())
    assert [t.original for t in result.tokens] == originals
    assert sum(result.counts.values()) == 128


def test_chunk_index_out_of_range(tokenizer, rt_chunks):
    with pytest.raises(UserError, match="out of range"):
        preview_chunk(rt_chunks, 10**6, tokenizer, MaskingConfig())


# ---------------------------------------------------------------- many chunks


@pytest.mark.parametrize(
    ("probability", "mask", "random"),
    [(0.15, 0.8, 0.1), (0.3, 0.5, 0.4)],
    ids=["default-80-10-10", "p0.3-50-40-10"],
)
def test_batch_rates_match_the_settings(tokenizer, rt_chunks, probability, mask, random):
    cfg = MaskingConfig(mlm_probability=probability, mask_replace_prob=mask, random_replace_prob=random, seed=3)
    stats = batch_statistics(rt_chunks, tokenizer, cfg, n_chunks=1000)
    assert stats.chunks == 1000
    assert sum(stats.counts.values()) == 1000 * 128
    assert stats.selected == stats.counts["mask"] + stats.counts["random"] + stats.counts["kept"]
    assert abs(stats.selected / stats.eligible - probability) < 0.01
    for kind, share in {"mask": mask, "random": random, "kept": 1 - mask - random}.items():
        assert abs(stats.counts[kind] / stats.selected - share) < 0.02, kind
    rows = stats.rows()
    assert rows[0]["setting %"] == pytest.approx(100 * probability)
    assert all(abs(r["difference (points)"]) < 3 * r["typical noise ±1 SE (points)"] + 0.5 for r in rows)


def test_batch_uses_all_chunks_when_fewer_than_asked(tokenizer, rt_chunks):
    few = {k: v[:40] for k, v in rt_chunks.items()}
    stats = batch_statistics(few, tokenizer, MaskingConfig(), n_chunks=1000)
    assert stats.chunks == 40
    assert any("only 40 chunks" in n for n in stats.notices)


# ---------------------------------------------------------------- whole words


def test_whole_word_masking_never_masks_part_of_a_word(tokenizer, rt_chunks):
    cfg = MaskingConfig(whole_word_mask=True, mlm_probability=0.3, seed=5)
    rows = [chunk_row(rt_chunks, i) for i in range(100)]
    shown, labels = mask_rows(rows, tokenizer, cfg)
    words = rt_chunks["word_ids"][:100]
    selected = labels != IGNORE
    split_words = 0
    for r in range(100):
        for w in np.unique(words[r][words[r] >= 0]):
            picked = selected[r][words[r] == w]
            assert picked.all() or not picked.any(), f"chunk {r}, word {w} partly masked"
            split_words += len(picked) > 1 and picked.all()
    assert split_words > 0  # some multi-piece words were selected, so the check had teeth
    assert (shown[selected] == tokenizer.mask_token_id).all()  # whole-word: always [MASK]


def test_whole_word_preview_masks_every_piece_and_says_split_is_forced(tokenizer):
    for seed in range(6):
        cfg = MaskingConfig(whole_word_mask=True, mlm_probability=0.5, seed=seed)
        result = preview_text(DEFAULT_TEXT, tokenizer, cfg)
        bromwell = [t.kind for t in result.tokens[1:4]]  # bro ##m ##well
        assert [t.original for t in result.tokens[1:4]] == ["bro", "##m", "##well"]
        assert len(set(bromwell)) == 1
        assert result.counts["random"] == result.counts["kept"] == 0
        assert any("forced to 1" in n for n in result.notices)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (dict(mask_replace_prob=0.8, random_replace_prob=0.5), r"plus the random share \(0.5\) is 1.3, above 1"),
        (dict(mlm_probability=0), "above 0 and below 1"),
        (dict(mlm_probability=1), "above 0 and below 1"),
        (dict(mlm_probability="lots"), "Masking probability must be a number"),
        (dict(mask_replace_prob=1.5), r"\[MASK\] share must be between 0 and 1"),
        (dict(random_replace_prob=-0.1), "random share must be between 0 and 1"),
        (dict(strategy="sentence"), "strategy must be 'token' or 'whole_word'"),
        (dict(seed="abc"), "Seed must be a whole number"),
    ],
)
def test_bad_settings_are_refused_with_a_message(values, message):
    args = dict(strategy="token", mlm_probability=0.15, mask_replace_prob=0.8, random_replace_prob=0.1, seed=0)
    args.update(values)
    with pytest.raises(UserError, match=message):
        MaskingConfig.from_inputs(**args)


def test_split_summing_to_one_is_accepted():
    cfg = MaskingConfig.from_inputs("token", 0.15, 0.7, 0.3, 0)
    assert cfg.keep_prob == 0.0
    assert cfg.mask_replace_prob + cfg.random_replace_prob <= 1


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_text_is_refused(tokenizer, text):
    with pytest.raises(UserError, match="Type a text to mask"):
        preview_text(text, tokenizer, MaskingConfig())


def test_very_long_text_is_truncated_with_a_notice(tokenizer):
    text = ("The film was long and the plot was thin. " * 2500)[:100_000]
    assert len(text) == 100_000
    result = preview_text(text, tokenizer, MaskingConfig())
    assert len(result.tokens) == 512
    assert any("longer than the model's maximum of 512 tokens" in n and "100,000" in n for n in result.notices)
    short = preview_text("A short review.", tokenizer, MaskingConfig())
    assert not any("maximum" in n for n in short.notices)
