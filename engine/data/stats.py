"""What the Dataset tab shows about a corpus: sizes, labels, samples, lengths, chunks.

Everything takes the DatasetDict from engine.data.corpus.load_corpus or the flat token arrays
from engine.data.corpus.tokenize_corpus and returns plain values, dataclasses or pandas
frames; `dataset_stats` bundles the JSON-able summary behind the `/dataset_stats` API.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from engine.data.corpus import CorpusConfig, TokenizedSplit, chunk_split, load_corpus, tokenize_corpus
from engine.errors import UserError
from engine.numbers import check_chunk_size, whole

SPLITS = ("train", "test")
MAX_SAMPLES = 50
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)


def clean_for_display(text: str) -> str:
    """IMDb reviews carry HTML line breaks (<br />): show them as real line breaks."""
    text = _BR.sub("\n", text or "")
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# ---------------------------------------------------------------- sizes and labels


def split_sizes(corpus) -> pd.DataFrame:
    return pd.DataFrame({"split": list(SPLITS), "documents": [len(corpus[s]) for s in SPLITS]})


def label_counts(corpus) -> pd.DataFrame:
    """Rows (split, label, documents, share); empty when the corpus has no label column."""
    rows = []
    for split in SPLITS:
        if "label" not in corpus[split].column_names:
            continue
        labels = corpus[split].select_columns(["label"])[:]["label"]  # one Arrow slice, without the texts
        counts = pd.Series(labels).value_counts(dropna=False).sort_index()
        total = int(counts.sum())
        for label, n in counts.items():
            shown = _label_text(label)
            rows.append({"split": split, "label": shown, "documents": int(n), "share": round(n / total, 4)})
    return pd.DataFrame(rows, columns=["split", "label", "documents", "share"])


def _label_text(label) -> str:
    if pd.isna(label):
        return "(missing)"
    if isinstance(label, float) and label.is_integer():
        return str(int(label))  # a label column with gaps is read as floats: 1.0 is label 1
    return str(label)


@dataclass
class LabelCheck:
    ok: bool | None  # True: labels only 0/1; False: other values; None: no label column
    message: str


def label_check(counts: pd.DataFrame) -> LabelCheck:
    """The course's sanity check: are the labels of every split really only 0 and 1?"""
    if counts.empty:
        return LabelCheck(None, "No label column: that is fine for masked language modelling, which needs no labels.")
    problems, notes = [], []
    for split, rows in counts.groupby("split", sort=False):
        values = list(rows["label"])
        others = [v for v in values if v not in ("0", "1")]
        if others:
            problems.append(f"{split} has {', '.join(others[:8])}{' …' if len(others) > 8 else ''}")
        elif len(values) == 1:
            notes.append(f"{split} has only label {values[0]}")
    if problems:
        return LabelCheck(False, (
            "Labels are not only 0 and 1: " + "; ".join(problems) + ". Masked language modelling ignores "
            "labels, but check that this is the data you meant (the course's unsupervised split has -1)."
        ))
    extra = f" Note: {'; '.join(notes)}." if notes else ""
    return LabelCheck(True, f"Labels are only 0 and 1 in every split, as expected.{extra}")


# ---------------------------------------------------------------- samples


def random_samples(corpus, n: int, seed: int, split: str = "train") -> pd.DataFrame:
    """`n` documents picked as the course does (`shuffle(seed).select(range(n))`), cleaned for display."""
    n = whole(n, "Number of samples")
    if not 1 <= n <= MAX_SAMPLES:
        raise UserError(f"Number of samples must be between 1 and {MAX_SAMPLES}, got {n}.")
    seed = whole(seed, "Seed", minimum=0)
    data = corpus[split]
    picked = data.shuffle(seed=seed).select(range(min(n, len(data))))
    frame = pd.DataFrame(picked[:])
    frame["text"] = frame["text"].map(clean_for_display)
    return frame[[c for c in ("label", "text") if c in frame.columns]]


# ---------------------------------------------------------------- token lengths


@dataclass
class LengthSummary:
    documents: int
    mean: float
    median: float
    p95: float
    longest: int
    max_length: int
    over_max: int  # documents with more tokens ([CLS] and [SEP] included) than the model takes
    share_over_max: float


def length_summary(doc_lengths: np.ndarray, max_length: int) -> LengthSummary:
    lengths = np.asarray(doc_lengths)
    if lengths.size == 0:
        return LengthSummary(0, 0.0, 0.0, 0.0, 0, max_length, 0, 0.0)
    over = int((lengths > max_length).sum())
    return LengthSummary(
        documents=int(lengths.size),
        mean=round(float(lengths.mean()), 1),
        median=float(np.median(lengths)),
        p95=round(float(np.percentile(lengths, 95)), 1),
        longest=int(lengths.max()),
        max_length=int(max_length),
        over_max=over,
        share_over_max=round(over / lengths.size, 4),
    )


# ---------------------------------------------------------------- chunking preview


@dataclass
class ChunkPreview:
    chunk_size: int
    chunks: int
    tokens: int
    dropped: int
    index: int  # which chunk is shown: the first one that holds a document boundary
    boundaries: int  # document boundaries ([SEP] then [CLS]) inside the shown chunk
    text: str  # the shown chunk decoded with its special tokens


def chunk_preview(split: TokenizedSplit, chunk_size: int, tokenizer) -> ChunkPreview:
    """Counts from engine.data.corpus.chunk_split and one decoded chunk where two documents meet."""
    columns, stats = chunk_split(split, chunk_size)
    if stats.chunks == 0:
        return ChunkPreview(chunk_size, 0, stats.tokens, stats.dropped, -1, 0, "")
    special = columns["special_tokens_mask"].astype(bool)
    # A boundary is a special token followed by another ([SEP] [CLS]) inside one chunk.
    meets = special[:, :-1] & special[:, 1:]
    per_chunk = meets.sum(axis=1)
    index = int(np.argmax(per_chunk > 0)) if per_chunk.any() else 0
    text = tokenizer.decode(columns["input_ids"][index].tolist(), skip_special_tokens=False)
    return ChunkPreview(stats.chunk_size, stats.chunks, stats.tokens, stats.dropped, index, int(per_chunk[index]), text)


# ---------------------------------------------------------------- the /dataset_stats summary


def dataset_stats(cfg: CorpusConfig, tokenizer, max_length: int, chunk_size: int, progress=None) -> dict:
    """The JSON-able summary of a corpus for a tokenizer (see components/dataset.py for the API)."""
    size = check_chunk_size(chunk_size, max_length)
    corpus = load_corpus(cfg)
    tokenized = tokenize_corpus(cfg, tokenizer, progress)
    counts = label_counts(corpus)
    check = label_check(counts)
    chunks = {}
    for split in SPLITS:
        _, stats = chunk_split(tokenized.splits[split], size)
        chunks[split] = {"chunks": stats.chunks, "tokens": stats.tokens, "dropped_tokens": stats.dropped}
    return {
        "split_sizes": {s: len(corpus[s]) for s in SPLITS},
        "label_counts": {
            s: {row.label: row.documents for row in counts[counts["split"] == s].itertuples()} for s in SPLITS
        } if not counts.empty else None,
        "labels_ok": check.ok,
        "sanity": check.message,
        "token_lengths": {s: asdict(length_summary(tokenized.splits[s].doc_lengths, max_length)) for s in SPLITS},
        "chunk_size": size,
        "chunks": chunks,
        "notices": corpus_notices(corpus),
        "cache_hit": tokenized.cache_hit,
        "seconds": round(tokenized.seconds, 3),
    }


def corpus_notices(corpus) -> list[str]:
    """What the upload reader had to decide (encoding, how a .txt was split), once per corpus."""
    seen = []
    for split in SPLITS:
        note = corpus[split].info.description or ""
        if note and note not in seen:
            seen.append(note)
    return seen
