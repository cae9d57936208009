"""Parameter counts: the textbook's figures, the public models' totals, and meta versus real."""

from __future__ import annotations

import warnings

import pytest
import torch

from engine.costs.arch import load_arch, target_presets
from engine.costs.calculator import CostSettings, estimate, reduction
from engine.costs.params import LoraSpec, count_params
from engine.errors import UserError


def test_textbook_r8_query_value_gives_294912():
    lora = count_params(load_arch("bert-base-uncased"), "lora", LoraSpec(r=8, targets=("query", "value")))
    assert lora.trainable == 294_912
    # The textbook's print_trainable_parameters line: all params 109,778,690 for the classifier;
    # for the MLM model the base is 109,514,298 and the adapters come on top.
    assert lora.total == 109_514_298 + 294_912


def test_textbook_r16_attention_gives_1179648_of_28311552():
    targets = ("query", "key", "value", "attention.output.dense")
    lora = count_params(load_arch("bert-base-uncased"), "lora", LoraSpec(r=16, targets=targets))
    assert lora.trainable == 1_179_648
    assert lora.targeted_weights == 28_311_552
    red = reduction(lora)
    assert red["lora_params"] == 1_179_648
    assert f"{red['percent_of_targeted']:.2f}" == "4.17"
    assert "1,179,648" in red["text"] and "28,311,552" in red["text"] and "4.17%" in red["text"]
    (row,) = red["per_shape"]  # one shape, 768 x 768, the textbook's r(d+k)/(dk)
    assert (row["d"], row["k"], row["r"], row["count"]) == (768, 768, 16, 48)
    assert row["lora_params"] == 24_576 and "16×(768+768)/(768×768)" in row["text"]


def test_textbook_percent_for_one_matrix_r8():
    e = estimate(CostSettings(model="bert-base-uncased", lora_r=8, lora_targets=["query", "value"]))
    assert "= 2.08%" in e["reduction"]["per_shape"][0]["text"]
    assert e["lora"]["params"]["trainable"] == 294_912


@pytest.mark.parametrize("name,total", [
    ("bert-base-uncased", 109_514_298),
    ("distilbert-base-uncased", 66_985_530),
    ("roberta-base", 124_697_433),
    ("bert-large-uncased", 335_174_458),
    ("bundled", 22_744_506),
])
def test_bundled_architectures_have_the_public_totals(name, total):
    report = count_params(load_arch(name), "full")
    assert report.total == total == report.trainable


def _real(model_dir: str, spec: LoraSpec | None):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(model_dir)
    if spec is not None:
        cfg = LoraConfig(r=spec.r, lora_alpha=spec.alpha, target_modules=spec.targets if spec.targets == "all-linear"
                         else list(spec.targets), modules_to_save=list(spec.modules_to_save) or None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = get_peft_model(model, cfg)
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


@pytest.mark.parametrize("spec", [
    None,
    LoraSpec(r=4, targets=("query", "value")),
    LoraSpec(r=2, targets="all-linear"),
    LoraSpec(r=4, targets=("query",), modules_to_save=("transform",)),
])
def test_meta_counts_equal_a_real_models(tiny_model_dir, spec):
    arch = load_arch(tiny_model_dir)
    report = count_params(arch, "full" if spec is None else "lora", spec)
    total, trainable = _real(tiny_model_dir, spec)
    assert (report.total, report.trainable) == (total, trainable)
    assert sum(report.trainable_numels) == trainable
    assert sum(report.trainable_by_segment.values()) == trainable


def test_distilbert_presets_name_its_own_modules(tiny_distilbert_dir):
    arch = load_arch(tiny_distilbert_dir)
    presets = target_presets(arch)
    assert list(presets.values())[0] == ["q_lin", "v_lin"]
    assert list(presets.values())[1] == ["q_lin", "k_lin", "v_lin", "out_lin"]
    assert "all-linear" in presets.values()
    total, trainable = _real(tiny_distilbert_dir, LoraSpec(r=4, targets=("q_lin", "v_lin")))
    report = count_params(arch, "lora", LoraSpec(r=4, targets=("q_lin", "v_lin")))
    assert (report.total, report.trainable) == (total, trainable)


def test_model_is_built_on_the_meta_device():
    from engine.costs.arch import meta_model

    model = meta_model(load_arch("bert-large-uncased"))
    assert {p.device for p in model.parameters()} == {torch.device("meta")}


# ---------------------------------------------------------------- bad input


def test_rank_zero_is_refused():
    with pytest.raises(UserError, match="rank r must be at least 1, got 0"):
        count_params(load_arch("bert-base-uncased"), "lora", LoraSpec(r=0))


def test_rank_above_the_layer_width_is_refused():
    with pytest.raises(UserError, match=r"r=1000 is above the width of query \(768 x 768\).*at most 768"):
        count_params(load_arch("bert-base-uncased"), "lora", LoraSpec(r=1000, targets=("query",)))


def test_unknown_target_names_the_choices():
    with pytest.raises(UserError) as err:
        count_params(load_arch("distilbert-base-uncased"), "lora", LoraSpec(targets=("query", "value")))
    message = str(err.value)
    assert "no linear layer named 'query', 'value'" in message
    assert "q_lin" in message and "v_lin" in message


def test_unknown_module_to_save_is_refused():
    with pytest.raises(UserError, match="no module named 'classifier'"):
        count_params(load_arch("bert-base-uncased"), "lora", LoraSpec(modules_to_save=("classifier",)))
