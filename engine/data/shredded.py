"""The words a tokenizer cuts into pieces: the domain vocabulary the model lacks.

Words come from the tokenizer's own normalizer and pre-tokenizer (so "Priyadarshan's"
becomes the words the model sees), counted over a seeded sample of documents; the
unique words are then encoded in one batch. A word that needs several pieces is a
word the model never learnt as a whole, which domain adaptation can help with.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.data.corpus import _untruncated
from engine.data.stats import clean_for_display

SPLIT_COLUMNS = ["word", "pieces", "occurrences", "tokens"]


@dataclass
class SplitWords:
    most_pieces: pd.DataFrame  # SPLIT_COLUMNS, most pieces first (then most frequent)
    most_frequent: pd.DataFrame  # SPLIT_COLUMNS, most occurrences first, split words only
    documents: int  # documents sampled
    words: int  # word occurrences counted
    unique_words: int
    split_share: float  # share of word occurrences that need more than one piece

    def summary(self) -> str:
        return (
            f"In {self.documents:,} sampled documents, {100 * self.split_share:.1f}% of the {self.words:,} words "
            f"({self.unique_words:,} distinct) are cut into several pieces by the tokenizer."
        )


def sample_texts(texts: list[str], n_docs: int, seed: int) -> list[str]:
    if n_docs <= 0 or n_docs >= len(texts):
        return list(texts)
    picked = np.random.default_rng(seed).choice(len(texts), size=n_docs, replace=False)
    return [texts[int(i)] for i in np.sort(picked)]


def count_words(texts: list[str], tokenizer) -> Counter:
    """Occurrences of each word as the tokenizer's normalizer and pre-tokenizer see it."""
    backend = tokenizer.backend_tokenizer
    normalizer, pre_tokenizer = backend.normalizer, backend.pre_tokenizer
    counts: Counter = Counter()
    for text in texts:
        text = clean_for_display(text) if isinstance(text, str) else ""
        if normalizer is not None:
            text = normalizer.normalize_str(text)
        if pre_tokenizer is None:
            counts.update(text.split())
            continue
        # Cut by the offsets, not the returned strings: byte-level pre-tokenizers rewrite
        # the characters ("Ġword"), and the batch encoding below re-applies that step.
        counts.update(text[start:end] for _, (start, end) in pre_tokenizer.pre_tokenize_str(text))
    return counts


def split_words(texts: list[str], tokenizer, n_docs: int = 2000, seed: int = 0, top: int = 25,
                min_count: int = 2) -> SplitWords:
    """The words split into the most pieces and the split words met most often, with counts.

    Only words with a letter count (numbers and punctuation are not vocabulary); the
    most-pieces table keeps words seen at least `min_count` times when there are any,
    so one-off typos do not crowd out recurring domain words.
    """
    sample = sample_texts(texts, n_docs, seed)
    counts = count_words(sample, tokenizer)
    words = [w for w in counts if any(c.isalpha() for c in w)]
    encodings = _untruncated(tokenizer).encode_batch([[w] for w in words], is_pretokenized=True,
                                                     add_special_tokens=False) if words else []
    rows = [(w, len(e.ids), counts[w], " ".join(e.tokens)) for w, e in zip(words, encodings)]
    split = pd.DataFrame([r for r in rows if r[1] > 1], columns=SPLIT_COLUMNS)
    total = sum(counts[w] for w in words)
    recurring = split[split["occurrences"] >= min_count]
    pool = recurring if not recurring.empty else split
    return SplitWords(
        most_pieces=_top(pool, ["pieces", "occurrences", "word"], [False, False, True], top),
        most_frequent=_top(split, ["occurrences", "pieces", "word"], [False, False, True], top),
        documents=len(sample),
        words=total,
        unique_words=len(words),
        split_share=round(float(split["occurrences"].sum()) / total, 4) if total else 0.0,
    )


def _top(frame: pd.DataFrame, by: list[str], ascending: list[bool], n: int) -> pd.DataFrame:
    return frame.sort_values(by, ascending=ascending, kind="stable").head(n).reset_index(drop=True)
