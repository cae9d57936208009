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


def test_each_run_is_paired_with_the_base_seed_by_seed(tiny_model_dir, tiny_distilbert_dir, monkeypatch):
    from components.probe_payoff import payoff_frame, verdict_markdown
    from engine.compare import side_by_side
    from engine.compare.downstream import downstream_with_payoffs

    run = side_by_side.Spec("run-1", "run-1 (full)", tiny_distilbert_dir)
    monkeypatch.setattr(side_by_side, "model_specs", lambda names, ref: [run])  # a run, the base not chosen
    frame, payoffs = downstream_with_payoffs(["run-1"], tiny_model_dir, ProbeConfig(n_reviews=40, seeds=(0, 1, 2)),
                                             cache=ModelCache(2))
    assert list(frame["model"]) == [f"base: {tiny_model_dir}", "run-1 (full)"]  # the base scored anyway
    (p,) = payoffs
    base_acc = [float(a) * 100 for a in frame.iloc[0]["accuracies"].split(", ")]
    run_acc = [float(a) * 100 for a in frame.iloc[1]["accuracies"].split(", ")]
    assert p["n_seeds"] == 3 and p["difference"] == pytest.approx(np.mean(run_acc) - np.mean(base_acc), abs=0.01)
    assert p["low"] <= p["difference"] <= p["high"]
    table = payoff_frame(payoffs)
    assert table.iloc[0]["verdict"] == p["verdict"] and table.iloc[0]["95% interval"].startswith("[")
    assert "run-1 (full)" in verdict_markdown(payoffs) and "3 seeds" in verdict_markdown(payoffs)


def test_base_only_check_has_no_comparison(tiny_model_dir):
    from components.probe_payoff import verdict_markdown
    from engine.compare.downstream import downstream_with_payoffs

    frame, payoffs = downstream_with_payoffs([BASE], tiny_model_dir, ProbeConfig(n_reviews=40, seeds=(0,)),
                                             cache=ModelCache(1))
    assert len(frame) == 1 and payoffs == [] and "Pick one or more" in verdict_markdown(payoffs)
