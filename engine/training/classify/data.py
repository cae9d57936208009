"""Labelled examples for a classifier run: checked labels, seeded subsets, tokens, batches.

Labels become ids in sorted order of their values (strings alphabetically, numbers
numerically), so the same corpus always gives the same ids. Batches use dynamic padding
with length-grouped order (transformers' LengthGroupedSampler + DataCollatorWithPadding):
each batch is padded only to its own longest text, not to max_length as in the textbook.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.data.corpus import BUNDLED_SOURCES, CorpusConfig, downsample, load_corpus
from engine.errors import UserError
from engine.training.classify.config import MAX_CLASSES, ClassifyConfig

BUNDLED_LABEL_NAMES = {0: "negative", 1: "positive"}  # bundled IMDb and Rotten Tomatoes
# An upload's text label column with blank cells reaches us through pandas' astype(str): "nan".
PANDAS_EMPTY = ("", "nan", "None")


@dataclass
class LabelledSplits:
    train_texts: list[str]
    train_labels: np.ndarray  # ids into `labels`
    test_texts: list[str]
    test_labels: np.ndarray
    labels: list[str]  # id -> name


def label_vocabulary(values: list, bundled: bool = False) -> tuple[list[str], dict]:
    """(names in id order, raw value -> id); UserError for empty, decimal or single-class labels."""
    empty = sum(1 for v in values if v is None or (isinstance(v, float) and math.isnan(v))
                or (isinstance(v, str) and v.strip() in PANDAS_EMPTY))
    if empty:
        raise UserError(f"{empty:,} of {len(values):,} rows have an empty label: fill them in or drop those rows.")
    if any(isinstance(v, str) for v in values):
        keys = {v: str(v).strip() for v in set(values)}
    else:
        decimal = next((v for v in values if isinstance(v, float) and not float(v).is_integer()), None)
        if decimal is not None:
            raise UserError(
                f"The label column holds decimal numbers (e.g. {decimal}): a classifier needs categories "
                f"(0/1, or names such as 'positive'), not scores."
            )
        keys = {v: int(v) for v in set(values)}
    classes = sorted(set(keys.values()))
    if len(classes) < 2:
        raise UserError(f"The label column holds one class only ({classes[0]!r}): a classifier needs at least two.")
    if len(classes) > MAX_CLASSES:
        raise UserError(
            f"The label column holds {len(classes):,} different values (at most {MAX_CLASSES}): "
            f"is it a text or a score column rather than a label?"
        )
    ids = {c: i for i, c in enumerate(classes)}
    names = [BUNDLED_LABEL_NAMES.get(c, str(c)) if bundled else str(c) for c in classes]
    return names, {v: ids[k] for v, k in keys.items()}


def _is_bundled(corpus: CorpusConfig) -> bool:
    return corpus.source in BUNDLED_SOURCES or (corpus.source == "stored" and corpus.corpus_id in BUNDLED_SOURCES)


def clean_text(text) -> str:
    # IMDb reviews carry HTML line breaks: tokens that say nothing about the sentiment.
    return text.replace("<br />", " ") if isinstance(text, str) else ""


def labelled_splits(cfg: ClassifyConfig) -> LabelledSplits:
    """The corpus's train/test splits, checked, mapped to label ids and downsampled with cfg.seed."""
    dd = load_corpus(cfg.corpus)
    for name in ("train", "test"):
        if "label" not in dd[name].column_names:
            column = cfg.corpus.label_column or "label"
            raise UserError(
                f"The corpus has no label column ({column!r}): a classifier needs one. "
                f"Columns: {', '.join(dd[name].column_names)}."
            )
    raw = {name: dd[name].select_columns(["label"])[:]["label"] for name in ("train", "test")}
    labels, to_id = label_vocabulary(raw["train"] + raw["test"], _is_bundled(cfg.corpus))
    picked = {}
    for offset, (name, size) in enumerate((("train", cfg.train_size), ("test", cfg.test_size))):
        rows = downsample(len(raw[name]), size, cfg.seed + offset)
        texts = dd[name].select_columns(["text"])[:]["text"]  # one Arrow slice, not a row loop
        picked[name] = ([clean_text(texts[i]) for i in rows], np.array([to_id[raw[name][i]] for i in rows]))
    if len(np.unique(picked["train"][1])) < 2:
        raise UserError(
            f"The {len(picked['train'][1])} training examples drawn hold one class only: raise the train size."
        )
    return LabelledSplits(*picked["train"], *picked["test"], labels)


def encode(texts: list[str], labels, tokenizer, max_length: int) -> list[dict]:
    """One feature dict per text (token ids, truncated, unpadded) with its label id."""
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    return [{**{k: enc[k][i] for k in keys}, "labels": int(labels[i])} for i in range(len(texts))]


def train_loader(features: list[dict], tokenizer, batch_size: int, seed: int):
    """Shuffled batches of similar lengths, each padded to its own longest text."""
    import torch
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding
    from transformers.trainer_pt_utils import LengthGroupedSampler

    lengths = [len(f["input_ids"]) for f in features]
    sampler = LengthGroupedSampler(batch_size, lengths=lengths, generator=torch.Generator().manual_seed(seed))
    return DataLoader(features, batch_size=batch_size, sampler=sampler, collate_fn=DataCollatorWithPadding(tokenizer))


def eval_batches(features: list[dict], tokenizer, batch_size: int):
    """(positions, batch) in order of length: little padding, no shuffling."""
    from transformers import DataCollatorWithPadding

    collate = DataCollatorWithPadding(tokenizer)
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        yield rows, collate([features[i] for i in rows])
