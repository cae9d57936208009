"""The cost calculator for sequence classification: exact counts against peft, memory, FLOPs, the CLI."""

from __future__ import annotations

import warnings

import pytest

from engine.costs.arch import load_arch
from engine.costs.calculator import CostSettings, estimate
from engine.costs.params import LoraSpec, count_params
from engine.errors import UserError

TEXTBOOK_LORA_ONLY = 294_912  # BERT-base, r=8 on query and value: the textbook's figure


def _peft_counts(name: str, targets: list[str], saved: list[str], num_labels: int = 2) -> tuple[int, int]:
    """(trainable, total) as peft counts them on a meta-device AutoModelForSequenceClassification."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification

    config = load_arch(name).config()
    config.num_labels = num_labels
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForSequenceClassification.from_config(config)
        lora = LoraConfig(task_type=TaskType.SEQ_CLS, r=8, lora_alpha=16, target_modules=targets,
                          modules_to_save=saved)
        return get_peft_model(model, lora).get_nb_trainable_parameters()


@pytest.mark.parametrize("name, targets, saved", [
    ("bert-base-uncased", ["query", "value"], ["classifier"]),
    ("bert-base-uncased", ["query", "value"], ["pooler", "classifier"]),
    ("distilbert-base-uncased", ["q_lin", "v_lin"], ["classifier"]),
    ("distilbert-base-uncased", ["q_lin", "v_lin"], ["pre_classifier", "classifier"]),
])
def test_counts_equal_peft_on_a_meta_classifier(name, targets, saved):
    report = count_params(load_arch(name), "lora", LoraSpec(8, 16, 0.05, tuple(targets), tuple(saved)), num_labels=2)
    assert (report.trainable, report.total) == _peft_counts(name, targets, saved)


def test_the_head_adds_to_the_textbooks_lora_only_count():
    arch = load_arch("bert-base-uncased")
    only_classifier = count_params(arch, "lora", LoraSpec(8, 16, 0.05, ("query", "value"), ("classifier",)), 2)
    assert only_classifier.trainable == TEXTBOOK_LORA_ONLY + (768 * 2 + 2)  # + the classifier's weight and bias
    as_classify_runs = count_params(arch, "lora", LoraSpec(8, 16, 0.05, ("query", "value")), 2)  # + the pooler
    assert as_classify_runs.trainable == TEXTBOOK_LORA_ONLY + (768 * 768 + 768) + (768 * 2 + 2)


def test_estimate_for_classification_has_no_mlm_head():
    common = dict(model="bert-base-uncased", lora_targets=["query", "value"], batch_size=32, seq_len=128)
    mlm = estimate(CostSettings(**common))
    cls = estimate(CostSettings(**common, task="classify", num_labels=3))
    assert cls["lora"]["params"]["trainable"] == TEXTBOOK_LORA_ONLY + 768 * 768 + 768 + 768 * 3 + 3
    # no vocabulary projection: the head's FLOPs shrink to a sliver, the full model loses the 30,522-row decoder bias
    assert cls["lora"]["flops"]["head_per_token"] < mlm["lora"]["flops"]["head_per_token"] / 100
    assert cls["full"]["memory"]["parts"]["logits"] < mlm["full"]["memory"]["parts"]["logits"] / 100
    assert any("Sequence classification (3 labels)" in n for n in cls["notes"])
    assert not any("Sequence classification" in n for n in mlm["notes"])


def test_bad_task_settings_are_refused():
    with pytest.raises(UserError, match="Task must be one of"):
        CostSettings(task="ner").validated()
    with pytest.raises(UserError, match="at least 2 labels"):
        CostSettings(task="classify", num_labels=1).validated()


def test_cli_estimates_a_classifier(capsys):
    from engine.cli.estimate import main

    assert main(["--task", "classify", "--num-labels", "2", "--targets", "query,value", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"task": "classify"' in out and f'"trainable": {TEXTBOOK_LORA_ONLY + 768 * 768 + 768 + 1538}' in out


def test_costs_tab_form_estimates_a_classifier_and_says_how_the_head_adds():
    from dataclasses import fields

    from components.costs import EstimateRequest, head_line, run_estimate, summary_md
    from tests.test_costs_app import GOOD

    assert fields(EstimateRequest)[-1].name == "task"
    e = run_estimate.__wrapped__(**{**GOOD, "task": "classify"})
    assert e["settings"]["task"] == "classify"
    assert f"{TEXTBOOK_LORA_ONLY:,} LoRA parameters plus {768 * 768 + 768 + 1538:,}" in head_line(e)
    assert head_line(e) in summary_md(e)
    assert "Sequence classification" not in summary_md(run_estimate.__wrapped__(**GOOD))
