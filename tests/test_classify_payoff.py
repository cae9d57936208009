"""engine.compare.payoff: paired differences over seeds with a t-interval, verdicts, the experiment plan,
and the multi-seed frozen-feature probe (engine.compare.downstream.downstream_payoff)."""

from __future__ import annotations

import pytest

from engine.compare.payoff import check_seed_count, paired_payoff, payoff_from_runs, plan_payoff, t_quantile
from engine.errors import UserError
from engine.training.classify.config import ClassifyConfig


def test_the_interval_is_students_t_on_the_paired_differences():
    # differences 2, 3, 1, 2 points: mean 2, sample std sqrt(2/3), t(0.975, df 3) = 3.182446
    out = paired_payoff([0.80, 0.81, 0.79, 0.82], [0.82, 0.84, 0.80, 0.84])
    assert t_quantile(3) == pytest.approx(3.182446, abs=1e-6)
    assert out["difference"] == pytest.approx(2.0, abs=1e-6)
    assert out["half_width"] == pytest.approx(3.182446 * (2 / 3) ** 0.5 / 2, abs=1e-3)
    assert out["low"] == pytest.approx(2.0 - 1.299, abs=1e-3) and out["high"] == pytest.approx(3.299, abs=1e-3)
    assert out["base"]["mean"] == pytest.approx(80.5) and out["adapted"]["values"] == [82.0, 84.0, 80.0, 84.0]
    assert out["verdict"] == "+2.0 points (±1.3): adaptation helped"


def test_verdicts_for_hurt_no_difference_and_a_single_seed():
    assert paired_payoff([0.9, 0.91, 0.92], [0.85, 0.86, 0.86])["verdict"].endswith("adaptation hurt")
    same = paired_payoff([0.80, 0.82, 0.81], [0.81, 0.81, 0.82], ("full", "lora"), "LoRA")
    assert same["verdict"].endswith("no difference that these seeds can detect") and "lora" in same
    one = paired_payoff([0.8], [0.9])
    assert one["half_width"] is None and "one seed" in one["verdict"]


def test_mappings_pair_by_seed_not_by_position():
    out = paired_payoff({1: 0.80, 2: 0.90, 3: 0.70}, {3: 0.72, 1: 0.82, 2: 0.92, 4: 0.99})
    assert out["seeds"] == [1, 2, 3] and out["difference"] == pytest.approx(2.0)
    assert out["half_width"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("n", [0, 21, 50])
def test_seed_counts_outside_1_to_20_are_refused(n):
    with pytest.raises(UserError, match=f"between 1 and 20 seeds, got {n}"):
        check_seed_count(n)
    with pytest.raises(UserError, match="between 1 and 20 seeds"):
        plan_payoff("bundled", "/runs/x/final", n)


def test_unpaired_arms_are_refused():
    with pytest.raises(UserError, match="paired seed by seed"):
        paired_payoff([0.8, 0.9], [0.8])


def test_the_plan_queues_one_run_per_seed_arm_and_method():
    template = ClassifyConfig(train_size=500, max_length=64)
    plan = plan_payoff("bundled", "/runs/r1/final", 3, full_vs_lora=True, template=template)
    assert len(plan) == 12 and {c.seed for c in plan} == {1, 2, 3}
    assert [(c.model, c.method) for c in plan[:4]] == [
        ("bundled", "full"), ("/runs/r1/final", "full"), ("bundled", "lora"), ("/runs/r1/final", "lora")]
    assert all(c.train_size == 500 and c.max_length == 64 and c.learning_rate == 0 for c in plan)
    assert len(plan_payoff("bundled", "/runs/r1/final", 2)) == 4


def test_payoff_from_finished_runs_compares_arms_and_methods():
    plan = plan_payoff("base", "adapted", 3, full_vs_lora=True)
    score = {("base", "full"): 0.80, ("adapted", "full"): 0.83, ("base", "lora"): 0.78, ("adapted", "lora"): 0.79}
    results = [(c, {"last_eval": {"accuracy": score[(c.model, c.method)] + c.seed / 1000}}) for c in plan]
    out = {row["comparison"]: row for row in payoff_from_runs(results, "base", "adapted")}
    assert set(out) == {"adapted vs start (full)", "adapted vs start (lora)", "LoRA vs full (start model)",
                        "LoRA vs full (adapted model)"}
    assert out["adapted vs start (full)"]["difference"] == pytest.approx(3.0)
    assert out["LoRA vs full (adapted model)"]["verdict"].endswith("LoRA hurt")


def test_the_probe_over_seeds_gives_a_paired_verdict(tiny_model_dir, tiny_distilbert_dir):
    from engine.compare.downstream import ProbeConfig, downstream_payoff
    from engine.compare.model_cache import ModelCache

    out = downstream_payoff(tiny_distilbert_dir, tiny_model_dir, ProbeConfig(n_reviews=40, seeds=(0, 1, 2)),
                            cache=ModelCache(2))
    assert out["n_seeds"] == 3 and out["seeds"] == [0, 1, 2] and len(out["base"]["values"]) == 3
    assert out["low"] <= out["difference"] <= out["high"] and "points" in out["verdict"]
    with pytest.raises(UserError, match="adapted model"):
        downstream_payoff("", tiny_model_dir, ProbeConfig(n_reviews=40), cache=ModelCache(2))
