"""The cost model for ModernBERT: exact parameter counts, the activation replay against what
PyTorch keeps (alternating global/sliding attention, rotary, GeGLU, no biases), long sequences,
and the clear refusal of an architecture the replay does not know."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from engine.costs.activations import trace_step
from engine.costs.arch import default_targets, load_arch, meta_model
from engine.costs.calculator import CostSettings, estimate
from engine.costs.measure import make_batch, saved_bytes
from engine.costs.params import LoraSpec, count_params
from engine.costs.trace import StepShape
from engine.errors import UserError

BASE_PARAMS = 149_655_232  # answerdotai/ModernBERT-base as AutoModelForMaskedLM counts it (tied decoder)
LARGE_PARAMS = 395_881_664


@pytest.mark.parametrize("name, total", [("modernbert-base", BASE_PARAMS), ("modernbert-large", LARGE_PARAMS)])
def test_parameter_counts_are_the_meta_models(name, total):
    arch = load_arch(name)
    model = meta_model(arch)
    assert sum(p.numel() for p in model.parameters()) == total
    assert count_params(arch, "full").total == total
    assert arch.max_length == 8192 and arch.layer_types.count("full_attention") == -(-arch.layers // 3)


def test_lora_counts_equal_peft_on_wqkv():
    from peft import LoraConfig, get_peft_model

    arch = load_arch("modernbert-base")
    assert default_targets(arch) == ["Wqkv"]
    report = count_params(arch, "lora", LoraSpec(8, 16, 0.05, ("Wqkv",)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = get_peft_model(meta_model(arch), LoraConfig(r=8, lora_alpha=16, target_modules=["Wqkv"]))
    assert (report.trainable, report.total) == peft_model.get_nb_trainable_parameters()
    assert report.trainable == 22 * 8 * (768 + 3 * 768)  # r(d + 3d) per layer's fused projection


@pytest.fixture(scope="module")
def tiny(tiny_modernbert_dir):
    from transformers import AutoModelForMaskedLM

    return tiny_modernbert_dir, AutoModelForMaskedLM.from_pretrained(tiny_modernbert_dir)


def _predicted_and_measured(tiny, method, head_all, batch, seq, precision):
    ref, base = tiny
    arch = load_arch(ref)
    spec = LoraSpec(r=4, alpha=8, dropout=0.1, targets=tuple(default_targets(arch)))
    model = copy.deepcopy(base)
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1,
                                                     target_modules=list(spec.targets)))
    torch.manual_seed(0)
    measured = saved_bytes(model, make_batch(batch, seq, arch.vocab, 0.3), head_all, precision)
    shape = StepShape(batch, seq, measured.masked_rows, head_all, precision, "cpu")
    trace = trace_step(arch, count_params(arch, method, spec), shape, 0.1 if method == "lora" else 0.0)
    return trace.bytes(), measured.saved_bytes


@pytest.mark.parametrize("method", ["full", "lora"])
@pytest.mark.parametrize("head_all", [False, True])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("batch, seq", [(2, 64), (1, 40)])
def test_replay_is_byte_exact_on_cpu(tiny, method, head_all, precision, batch, seq):
    """The tiny config has window 16, so at 40 and 64 tokens the sliding layers really slide."""
    predicted, measured = _predicted_and_measured(tiny, method, head_all, batch, seq, precision)
    assert predicted == measured


def test_sliding_masks_make_memory_grow_with_the_square_of_the_length():
    common = dict(model="modernbert-base", batch_size=1, precision="bf16", device="cuda")
    act = {n: estimate(CostSettings(**common, seq_len=n))["lora"]["memory"]["parts"]["activations"]
           for n in (1024, 2048, 4096, 8192)}
    assert act[1024] < act[2048] < act[4096] < act[8192]
    # past 4k tokens the 14 sliding layers' batch x seq x seq masks dominate: more than linear growth
    assert act[8192] > 2.2 * act[4096]
    e = estimate(CostSettings(**common, seq_len=8192))
    assert any("14 of 22 layers attend within a 128-token window" in n for n in e["notes"])
    assert any("masked 30%" in n for n in estimate(CostSettings(**common, seq_len=128, mlm_probability=0.3))["notes"])


def test_a_length_past_the_maximum_is_refused_with_the_maximum():
    with pytest.raises(UserError, match="above modernbert-base's maximum of 8192"):
        estimate(CostSettings(model="modernbert-base", seq_len=8193))


def test_hub_ids_use_the_bundled_config_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    arch = load_arch("answerdotai/ModernBERT-large")
    assert (arch.layers, arch.hidden, arch.family) == (28, 1024, "modernbert")


def test_classifier_estimate_has_no_vocabulary():
    mlm = estimate(CostSettings(model="modernbert-base", seq_len=1024, batch_size=4))
    cls = estimate(CostSettings(model="modernbert-base", seq_len=1024, batch_size=4, task="classify"))
    # head.dense + head.norm (no bias) + the 2-label classifier, trained in full next to LoRA
    assert cls["lora"]["params"]["trainable"] == 22 * 8 * 4 * 768 + 768 * 768 + 768 + 768 * 2 + 2
    assert cls["full"]["memory"]["parts"]["logits"] < mlm["full"]["memory"]["parts"]["logits"] / 100
    assert any("goes through the head (dense, GELU, norm)" in n for n in cls["notes"])
    assert any("modules_to_save head + classifier" in n for n in cls["notes"])
    from components.costs import head_line

    assert "(head + classifier, trained in full)" in head_line(cls)


def test_a_tiny_modernbert_folder_is_estimated(tiny_modernbert_dir):
    e = estimate(CostSettings(model=tiny_modernbert_dir, seq_len=2048, batch_size=2, device="cpu"))
    assert e["full"]["params"]["total"] == sum(
        p.numel() for p in meta_model(load_arch(tiny_modernbert_dir)).parameters())


def test_an_unknown_architecture_is_refused_naming_the_known_ones(tiny_eurobert_dir):
    with pytest.raises(UserError, match=r"does not know the 'eurobert' architecture.*bert, camembert, "
                                        r"distilbert, modernbert, roberta, xlm-roberta"):
        load_arch(tiny_eurobert_dir)
    from components.costs import on_model

    presets, targets, line, rate = on_model(tiny_eurobert_dir)  # said under the field, not a toast
    assert line.startswith("⚠️ The cost model does not know the 'eurobert'") and rate == presets == targets == {
        "__type__": "update"}


def test_what_fits_for_modernbert_reaches_long_sequences():
    from engine.costs.fits import what_fits

    result = what_fits(CostSettings(model="modernbert-base", precision="bf16", batch_size=1, seq_len=1024))
    h100 = next(r for r in result["by_gpu"] if "H100" in r["gpu"])
    assert h100["lora_max_seq"] == 8192  # batch 1 of the longest chunk fits 80 GB
    assert h100["lora_max_batch"] >= h100["full_max_batch"] > 1


def test_costs_tab_offers_the_family_rate_and_the_cli_uses_it(capsys):
    from components.costs import on_model
    from engine.cli.estimate import main

    *_, line, rate = on_model("modernbert-base")
    assert rate == 0.30 and "8,192 tokens" in line and "30%" in line
    assert on_model("bert-base-uncased")[-1] == 0.15
    assert main(["--model", "answerdotai/ModernBERT-base", "--seq", "2048", "--batch", "2"]) == 0
    assert "masked 30% of positions" in capsys.readouterr().out


def test_the_costs_tab_summary_explains_the_sliding_window():
    from components.costs import run_estimate, summary_md
    from tests.test_costs_app import GOOD

    e = run_estimate.__wrapped__(**{**GOOD, "model": "modernbert-base", "seq_len": 8192, "batch_size": 1,
                                    "targets": "Wqkv", "mlm_probability": 0.3})
    assert "14 of 22 layers attend within a 128-token window" in summary_md(e)
    assert "window" not in summary_md(run_estimate.__wrapped__(**GOOD))
