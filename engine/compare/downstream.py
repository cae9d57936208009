"""Downstream check: does domain adaptation help a sentiment classifier?

The course closes by suggesting a classifier on top of the adapted encoder. Done
cheaply here: the encoder stays frozen, each review becomes its mean-pooled last
hidden state, and a scikit-learn logistic regression learns the IMDb label from
those features. Several seeds draw different train/test splits of the same reviews,
so the user sees the spread and not a single lucky number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from engine.errors import UserError
from engine.mlm_head import encoder_hidden
from engine.numbers import number, whole


@dataclass(frozen=True)
class ProbeConfig:
    n_reviews: int = 400  # labelled reviews in the pool (split again per seed)
    seeds: tuple[int, ...] = (0, 1, 2)
    test_fraction: float = 0.5
    max_length: int = 128  # tokens per review: the opening of each review carries enough sentiment
    batch_size: int = 32
    source: str = "imdb"
    data_seed: int = 1234

    def validated(self) -> ProbeConfig:
        if not 20 <= whole(self.n_reviews, "Number of reviews") <= 5_000:
            raise UserError(f"Use between 20 and 5,000 reviews for the downstream check, got {self.n_reviews}.")
        if not 1 <= len(self.seeds) <= 10:
            raise UserError(f"Use between 1 and 10 seeds, got {len(self.seeds)}.")
        if not 0.1 <= number(self.test_fraction, "Test fraction") <= 0.9:
            raise UserError(f"Test fraction must be between 0.1 and 0.9, got {self.test_fraction}.")
        return self


def labelled_reviews(cfg: ProbeConfig) -> tuple[list[str], np.ndarray]:
    """A seeded slice of the bundled corpus with its 0/1 labels, HTML line breaks removed."""
    from engine.data import store
    from engine.data.corpus import config_for, load_corpus

    meta = store.get(cfg.source)  # a bundled corpus or a stored one, by id
    dd = load_corpus(config_for(meta.corpus_id, max_docs=int(cfg.n_reviews), seed=cfg.data_seed))
    texts, labels = [], []
    for split in ("train", "test"):
        if "label" not in dd[split].column_names:
            raise UserError(f"{meta.name} has no label column: the downstream check needs labels.")
        texts += [t.replace("<br />", " ") for t in dd[split]["text"]]
        labels += [str(v) for v in dd[split]["label"]]
    y = np.unique(np.asarray(labels), return_inverse=True)[1].astype(np.int64)  # any label names -> 0..k-1
    if len(np.unique(y)) < 2:
        raise UserError("The slice holds one label only: use more reviews.")
    return texts, y


@torch.inference_mode()
def mean_pooled(model, tokenizer, texts: list[str], max_length: int = 128, batch_size: int = 32) -> np.ndarray:
    """(n, hidden) features: the encoder's last hidden states averaged over real tokens."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(texts[start:start + batch_size], truncation=True, max_length=max_length,
                        padding=True, return_tensors="pt")
        ids, attn = enc["input_ids"].to(device), enc["attention_mask"].to(device)
        hidden = encoder_hidden(model, ids, attn).float()
        weights = attn.unsqueeze(-1).float()
        out.append(((hidden * weights).sum(1) / weights.sum(1).clamp(min=1)).cpu().numpy())
    return np.concatenate(out)


def probe_accuracies(features: np.ndarray, labels: np.ndarray, seeds, test_fraction: float = 0.5) -> list[float]:
    """Test accuracy of a logistic regression per seed (each seed its own stratified split)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores = []
    for seed in seeds:
        x_tr, x_te, y_tr, y_te = train_test_split(features, labels, test_size=test_fraction,
                                                  random_state=int(seed), stratify=labels)
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5))
        scores.append(float(clf.fit(x_tr, y_tr).score(x_te, y_te)))
    return scores


def _probe_row(label: str, acc: list[float], n: int, n_test: int) -> dict:
    return {
        "model": label,
        "accuracy_mean": round(float(np.mean(acc)), 4),
        "accuracy_std": round(float(np.std(acc, ddof=1)) if len(acc) > 1 else 0.0, 4),
        "accuracies": ", ".join(f"{a:.3f}" for a in acc),
        "n_train": n - n_test,
        "n_test": n_test,
    }


def _seed_accuracies(specs, cfg: ProbeConfig, cache) -> tuple[list[list[float]], int]:
    """Per spec, the probe's accuracy on each seed (same reviews, same splits); and the pool size."""
    texts, labels = labelled_reviews(cfg)
    features = cache.run_each(specs, lambda model, tok: mean_pooled(model, tok, texts, cfg.max_length, cfg.batch_size))
    return [probe_accuracies(f, labels, cfg.seeds, cfg.test_fraction) for f in features], len(labels)


def downstream_check(names: list[str] | None, base_ref: str | None = None, cfg: ProbeConfig | None = None,
                     cache=None) -> pd.DataFrame:
    """Accuracy mean and spread per chosen model, on the same reviews and the same splits."""
    return downstream_with_payoffs(names, base_ref, cfg, cache, with_base=False)[0]


def downstream_with_payoffs(names: list[str] | None, base_ref: str | None = None, cfg: ProbeConfig | None = None,
                            cache=None, with_base: bool = True) -> tuple[pd.DataFrame, list[dict]]:
    """downstream_check's table, and for each chosen run its paired comparison with the base
    (engine.compare.payoff: mean ± std, the difference with its 95% t-interval, a verdict).
    The base is scored too when not chosen (with_base), since every comparison needs it."""
    from engine.compare.model_cache import shared_cache
    from engine.compare.payoff import paired_payoff
    from engine.compare.side_by_side import BASE, base_spec, model_specs

    cfg = (cfg or ProbeConfig()).validated()
    specs = model_specs(names, base_ref)
    if with_base and all(s.name != BASE for s in specs):
        specs = [base_spec(base_ref), *specs]
    accs, n = _seed_accuracies(specs, cfg, cache or shared_cache())
    n_test = math.ceil(n * cfg.test_fraction)  # how train_test_split rounds
    frame = pd.DataFrame([_probe_row(s.label, a, n, n_test) for s, a in zip(specs, accs)])
    base = next((dict(zip(cfg.seeds, a)) for s, a in zip(specs, accs) if s.name == BASE), None)
    payoffs = [{"model": s.label, **paired_payoff(base, dict(zip(cfg.seeds, a)), ("base", "run"), "adaptation")}
               for s, a in zip(specs, accs) if s.name != BASE and base is not None]
    return frame, payoffs


def downstream_payoff(adapted_ref: str, base_ref: str | None = None, cfg: ProbeConfig | None = None,
                      cache=None) -> dict:
    """The probe for the base and an adapted model on the same reviews and splits, seed by seed,
    compared with engine.compare.payoff: mean ± std per model, the paired difference with its
    95% t-interval and a verdict ("+1.9 points (±0.7): adaptation helped")."""
    from engine.compare.model_cache import shared_cache
    from engine.compare.payoff import check_seed_count, paired_payoff
    from engine.compare.side_by_side import Spec, base_spec

    cfg = (cfg or ProbeConfig()).validated()
    check_seed_count(len(cfg.seeds))
    if not (adapted_ref or "").strip():
        raise UserError("Pick the adapted model (a finished run) to compare with the base.")
    specs = [base_spec(base_ref), Spec(adapted_ref, f"adapted: {adapted_ref}", adapted_ref)]
    texts, labels = labelled_reviews(cfg)
    cache = cache or shared_cache()
    features = cache.run_each(specs, lambda model, tok: mean_pooled(model, tok, texts, cfg.max_length, cfg.batch_size))
    base, adapted = (dict(zip(cfg.seeds, probe_accuracies(f, labels, cfg.seeds, cfg.test_fraction)))
                     for f in features)
    return {"models": [s.label for s in specs], **paired_payoff(base, adapted, ("base", "adapted"), "adaptation")}
