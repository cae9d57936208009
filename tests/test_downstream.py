"""engine.compare.downstream: the frozen-feature sentiment probe on a small slice of bundled IMDb."""

from __future__ import annotations

import numpy as np
import pytest

from engine.compare.downstream import ProbeConfig, downstream_check, labelled_reviews, mean_pooled, probe_accuracies
from engine.compare.model_cache import ModelCache
from engine.compare.side_by_side import BASE
from engine.errors import UserError
from engine.models import load_mlm


def test_probe_learns_separable_features_and_not_noise():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 50)
    separable = rng.normal(size=(100, 8)) + labels[:, None] * 4.0
    assert probe_accuracies(separable, labels, seeds=(0, 1)) == [1.0, 1.0]
    noise = rng.normal(size=(100, 8))
    assert np.mean(probe_accuracies(noise, labels, seeds=(0, 1, 2))) < 0.8


def test_labelled_slice_is_small_and_has_both_labels():
    texts, labels = labelled_reviews(ProbeConfig(n_reviews=40))
    assert len(texts) == len(labels) == 40 and set(labels.tolist()) == {0, 1}
    assert not any("<br />" in t for t in texts)


def test_mean_pooling_ignores_padding(tiny_model_dir):
    loaded = load_mlm(tiny_model_dir)
    short = "a good film"
    alone = mean_pooled(loaded.model, loaded.tokenizer, [short])
    padded = mean_pooled(loaded.model, loaded.tokenizer, [short, short + " that runs long" * 10])
    assert alone.shape == (1, 32) and np.allclose(alone[0], padded[0], atol=1e-5)


def test_downstream_check_runs_on_a_small_slice(tiny_model_dir):
    frame = downstream_check([BASE], tiny_model_dir, ProbeConfig(n_reviews=40, seeds=(0, 1)), cache=ModelCache(2))
    row = frame.iloc[0]
    assert list(frame["model"]) == [f"base: {tiny_model_dir}"]
    assert 0.0 <= row["accuracy_mean"] <= 1.0 and row["accuracy_std"] >= 0.0
    assert len(row["accuracies"].split(", ")) == 2 and row["n_train"] + row["n_test"] == 40


@pytest.mark.parametrize("cfg, message", [
    (ProbeConfig(n_reviews=5), "between 20 and 5,000 reviews"),
    (ProbeConfig(seeds=()), "between 1 and 10 seeds"),
    (ProbeConfig(test_fraction=0.95), "Test fraction"),
])
def test_bad_probe_settings(cfg, message):
    with pytest.raises(UserError, match=message):
        downstream_check([BASE], "bundled", cfg, cache=ModelCache(1))
