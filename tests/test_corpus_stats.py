"""Corpus statistics: label sanity, seeded samples, token lengths, chunk preview, split words."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from datasets import Dataset, DatasetDict

from engine.data import stats as cs
from engine.data.corpus import chunk_split, load_corpus, tokenize_corpus, tokenize_texts
from engine.data.shredded import SPLIT_COLUMNS as COLUMNS
from engine.data.shredded import count_words, split_words
from engine.errors import UserError


def corpus_with(labels_train, labels_test=None, texts=None) -> DatasetDict:
    def split(labels):
        n = len(labels)
        return Dataset.from_dict({"text": texts[:n] if texts else [f"doc {i}" for i in range(n)], "label": labels})

    return DatasetDict({"train": split(labels_train), "test": split(labels_test or [0, 1])})


def test_labels_zero_one_pass_the_sanity_check():
    counts = cs.label_counts(corpus_with([0, 1, 1, 0, 1], [1, 0]))
    assert counts[counts["split"] == "train"].set_index("label")["documents"].to_dict() == {"0": 2, "1": 3}
    check = cs.label_check(counts)
    assert check.ok is True and "only 0 and 1" in check.message


def test_other_labels_fail_the_sanity_check():
    check = cs.label_check(cs.label_counts(corpus_with([-1, 0, 1, 2], [0, 1])))
    assert check.ok is False
    assert "not only 0 and 1" in check.message and "train has -1, 2" in check.message
    assert "test" not in check.message.split("ignores")[0]  # the test split is fine


def test_string_labels_are_not_zero_one():
    check = cs.label_check(cs.label_counts(corpus_with(["pos", "neg"], ["pos", "neg"])))
    assert check.ok is False and "neg, pos" in check.message


def test_no_label_column_is_said_so():
    corpus = DatasetDict({s: Dataset.from_dict({"text": ["a", "b"]}) for s in ("train", "test")})
    counts = cs.label_counts(corpus)
    assert counts.empty
    check = cs.label_check(counts)
    assert check.ok is None and "No label column" in check.message


def test_float_labels_with_gaps():
    counts = cs.label_counts(corpus_with([0.0, 1.0, None, 1.0], [0.0, 1.0]))
    assert set(counts[counts["split"] == "train"]["label"]) == {"0", "1", "(missing)"}
    check = cs.label_check(counts)
    assert check.ok is False and "train has (missing)" in check.message


def test_one_class_split_is_noted():
    check = cs.label_check(cs.label_counts(corpus_with([1, 1, 1], [0, 1])))
    assert check.ok is True and "train has only label 1" in check.message


def test_bundled_imdb_labels(small_corpus):
    counts = cs.label_counts(load_corpus(small_corpus))
    assert set(counts["label"]) == {"0", "1"} and counts["documents"].sum() == 200
    assert cs.label_check(counts).ok is True


def test_samples_are_seeded_reproducible_and_cleaned():
    texts = [f"Review {i}.<br /><br />Second line {i}<BR/>third" for i in range(40)]
    corpus = corpus_with([i % 2 for i in range(40)], texts=texts)
    a, b = cs.random_samples(corpus, 5, 7), cs.random_samples(corpus, 5, 7)
    pd.testing.assert_frame_equal(a, b)
    assert list(cs.random_samples(corpus, 5, 8)["text"]) != list(a["text"])
    assert len(a) == 5 and list(a.columns) == ["label", "text"]
    for text in a["text"]:
        assert "<br" not in text.lower() and "\n\nSecond line" in text and "\nthird" in text


def test_samples_bad_count_and_seed():
    corpus = corpus_with([0, 1, 0])
    with pytest.raises(UserError, match="between 1 and 50"):
        cs.random_samples(corpus, 0, 1)
    with pytest.raises(UserError, match="Seed must be a whole number"):
        cs.random_samples(corpus, 2, "abc")


def test_length_summary_share_over_max():
    summary = cs.length_summary(np.array([10, 100, 600, 700]), 512)
    assert (summary.over_max, summary.share_over_max, summary.longest) == (2, 0.5, 700)
    assert summary.median == 350.0


def test_token_lengths_match_the_tokenizer(tokenizer):
    texts = ["a short one", "a somewhat longer review of a film"]
    split = tokenize_texts(texts, tokenizer)
    assert list(split.doc_lengths) == [len(tokenizer(t)["input_ids"]) for t in texts]


def test_chunk_preview_agrees_with_chunk_split(small_corpus, tokenizer):
    split = tokenize_corpus(small_corpus, tokenizer).splits["train"]
    preview = cs.chunk_preview(split, 64, tokenizer)
    columns, stats = chunk_split(split, 64)
    assert (preview.chunks, preview.tokens, preview.dropped) == (stats.chunks, stats.tokens, stats.dropped)
    assert preview.chunks * 64 + preview.dropped == split.total
    assert preview.boundaries >= 1
    assert f"{tokenizer.sep_token} {tokenizer.cls_token}" in preview.text
    assert preview.text == tokenizer.decode(columns["input_ids"][preview.index].tolist())


def test_dataset_stats_summary(small_corpus, tokenizer):
    stats = cs.dataset_stats(small_corpus, tokenizer, 512, 128)
    assert stats["split_sizes"] == {"train": 180, "test": 20}
    assert stats["labels_ok"] is True
    assert sum(stats["label_counts"]["train"].values()) == 180
    for split in ("train", "test"):
        c = stats["chunks"][split]
        assert c["chunks"] == c["tokens"] // 128 and c["dropped_tokens"] == c["tokens"] % 128
        assert stats["token_lengths"][split]["documents"] == stats["split_sizes"][split]
    with pytest.raises(UserError, match="at least 8"):
        cs.dataset_stats(small_corpus, tokenizer, 512, 0)
    with pytest.raises(UserError, match="above the model's maximum of 512"):
        cs.dataset_stats(small_corpus, tokenizer, 512, 513)


def test_split_words_sorted_with_counts(small_corpus, tokenizer):
    texts = load_corpus(small_corpus)["train"]["text"][:]
    words = split_words(texts, tokenizer, n_docs=100, seed=0, top=10)
    for table in (words.most_pieces, words.most_frequent):
        assert not table.empty and list(table.columns) == COLUMNS
        assert (table["pieces"] > 1).all() and (table["occurrences"] >= 1).all()
    assert list(words.most_pieces["pieces"]) == sorted(words.most_pieces["pieces"], reverse=True)
    assert list(words.most_frequent["occurrences"]) == sorted(words.most_frequent["occurrences"], reverse=True)
    assert words.documents == 100 and 0 < words.split_share < 1
    again = split_words(texts, tokenizer, n_docs=100, seed=0, top=10)
    pd.testing.assert_frame_equal(words.most_frequent, again.most_frequent)


def test_split_words_pieces_are_the_tokenizers(tokenizer):
    texts = ["Blaxploitation films and blaxploitation stars.", "The cat sat."] * 3
    words = split_words(texts, tokenizer, n_docs=0, top=5)
    row = words.most_pieces.iloc[0]
    assert row["word"] == "blaxploitation" and row["occurrences"] == 6
    assert row["pieces"] == len(tokenizer.tokenize("blaxploitation"))
    assert row["tokens"] == " ".join(tokenizer.tokenize("blaxploitation"))
    assert "cat" not in set(words.most_frequent["word"])  # one piece: not a split word


def test_count_words_uses_the_pre_tokenizer(tokenizer):
    counts = count_words(["Priyadarshan's film<br />is FUN, fun!"], tokenizer)
    assert counts["fun"] == 2 and counts["priyadarshan"] == 1 and counts["br"] == 0
