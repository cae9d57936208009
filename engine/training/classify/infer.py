"""Inference with a trained classifier (the textbook's predict_sentiment, batched), and a preflight.

The textbook pads every sentence to 128 tokens and classifies one at a time (48.6 samples/s
on its GPU). Here texts go in batches of similar length, padded to their own longest.
"""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from engine.errors import UserError
from engine.models import longest_input, resolve

MAX_TEXTS = 1_000  # one request; more belongs in a classifier run's evaluation, not an API call
MAX_CHARS = 20_000  # per text: far beyond any max length, and keeps a request's memory bounded

TEXTBOOK_SENTENCES = [
    "This is the best movie I have ever seen!",
    "Absolutely horrible, a complete disaster.",
    "It was okay, nothing particularly special.",
    "Mind-blowing performance, highly recommend!",
    "Boring and predictable throughout.",
    "A true cinematic achievement!",
]


@lru_cache(maxsize=2)
def _loaded(src: str, stamp: float):
    from engine.training.classify.model import load_trained

    return load_trained(src)


def _stamp(src: str) -> float:
    """Reload a folder whose model was replaced (same path, newer files)."""
    path = Path(src)
    files = [p for p in (path / "config.json", path / "adapter_config.json") if p.exists()]
    return max((p.stat().st_mtime for p in files), default=0.0)


def check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        texts = [line for line in texts.splitlines() if line.strip()]
    texts = list(texts or [])
    if not texts:
        raise UserError("No text to classify: type one sentence per line.")
    if len(texts) > MAX_TEXTS:
        raise UserError(f"{len(texts):,} texts is more than {MAX_TEXTS:,} at a time: split them into smaller batches.")
    if not all(isinstance(t, str) for t in texts):
        raise UserError("Every text to classify must be a string.")
    return [t[:MAX_CHARS] for t in texts]


def classify_texts(model_ref: str, texts, max_length: int = 128, batch_size: int = 32) -> dict:
    """{"results": [{"text", "label", "confidence"}], "samples_per_s", "seconds", "labels"}.

    model_ref: a classifier run's final/ folder, or a saved/Hub *ForSequenceClassification model.
    """
    import torch

    from engine.training.classify.data import eval_batches

    texts = check_texts(texts)
    src = resolve(model_ref)
    model, tokenizer, labels = _loaded(src, _stamp(src))
    limit = longest_input(model.config.to_dict(), tokenizer.model_max_length)  # ModernBERT: 8,192
    if not 1 <= int(max_length) <= limit:
        raise UserError(f"Max length must be between 1 and the model's maximum of {limit} tokens, got {max_length}.")
    start = time.perf_counter()
    enc = tokenizer(texts, truncation=True, max_length=int(max_length))
    features = [{k: enc[k][i] for k in enc} for i in range(len(texts))]
    probs = np.zeros((len(texts), len(labels)), dtype=np.float32)
    with torch.inference_mode():
        for rows, batch in eval_batches(features, tokenizer, batch_size):
            probs[rows] = torch.softmax(model(**batch).logits.float(), -1).numpy()
    seconds = time.perf_counter() - start
    picked = probs.argmax(-1)
    results = [{"text": t, "label": labels[k], "confidence": round(float(probs[i, k]), 4)}
               for i, (t, k) in enumerate(zip(texts, picked))]
    return {"results": results, "labels": labels, "seconds": round(seconds, 4),
            "samples_per_s": round(len(texts) / max(seconds, 1e-9), 1)}


def preflight(cfg) -> dict:
    """Check a ClassifyConfig before queueing it (labels, sizes, max length); UserError if it cannot run."""
    from engine.models import max_length_of
    from engine.training.classify.config import check_max_length
    from engine.training.classify.data import labelled_splits

    cfg = cfg.validated()
    check_max_length(cfg.max_length, max_length_of(cfg.model), cfg.model)
    splits = labelled_splits(cfg)
    return {"labels": splits.labels, "n_train": len(splits.train_texts), "n_test": len(splits.test_texts),
            "learning_rate": cfg.learning_rate}
