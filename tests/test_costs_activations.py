"""Activation, gradient and optimizer bytes: predicted against what PyTorch really keeps.

Activations are measured with torch.autograd.graph.saved_tensors_hooks (each storage
once, parameters and buffers excluded: engine.costs.measure.saved_bytes) on CPU, with
tiny models and the bundled MiniLM, full and LoRA, several batch sizes and sequence
lengths, the MLM head on masked positions only (engine.mlm_head) and on every position.
The issue asks for 15%; on CPU the replay is in fact byte-exact, which the tight test pins.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from engine.costs.activations import trace_step
from engine.costs.arch import load_arch
from engine.costs.measure import make_batch, saved_bytes
from engine.costs.memory import optimizer_state_bytes
from engine.costs.params import LoraSpec, count_params
from engine.costs.trace import StepShape

TOLERANCE = 0.15


@pytest.fixture(scope="module")
def tiny_roberta_dir(tmp_path_factory) -> str:
    from transformers import RobertaConfig, RobertaForMaskedLM

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-roberta")
    config = RobertaConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=130)
    RobertaForMaskedLM(config).save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def models(tiny_model_dir, tiny_distilbert_dir, tiny_roberta_dir):
    """name -> (model directory or ref, loaded model kept pristine; tests wrap deep copies)."""
    from transformers import AutoModelForMaskedLM

    from engine.models import load_mlm

    out = {n: (d, AutoModelForMaskedLM.from_pretrained(d)) for n, d in
           (("bert", tiny_model_dir), ("distilbert", tiny_distilbert_dir), ("roberta", tiny_roberta_dir))}
    out["minilm"] = ("bundled", load_mlm("bundled").model)
    return out


def _wrapped(base, spec: LoraSpec | None):
    model = copy.deepcopy(base)
    if spec is None:
        return model
    from peft import LoraConfig, get_peft_model

    targets = spec.targets if spec.targets == "all-linear" else list(spec.targets)
    config = LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=targets,
                        modules_to_save=list(spec.modules_to_save) or None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_peft_model(model, config)


def predicted_and_measured(models, name, method, head_all, batch, seq, precision="fp32", checkpointing=False,
                           spec: LoraSpec | None = None):
    ref, base = models[name]
    arch = load_arch(ref)
    if spec is None:
        from engine.costs.arch import default_targets

        spec = LoraSpec(r=4, alpha=8, dropout=0.1, targets=tuple(default_targets(arch)))
    model = _wrapped(base, spec if method == "lora" else None)
    if checkpointing:
        inner = model.get_base_model() if method == "lora" else model
        inner.gradient_checkpointing_enable()
    torch.manual_seed(0)
    batch_ = make_batch(batch, seq, arch.vocab, 0.15)
    measured = saved_bytes(model, batch_, head_all, precision)
    shape = StepShape(batch, seq, measured.masked_rows, head_all, precision, "cpu", checkpointing)
    report = count_params(arch, method, spec)
    trace = trace_step(arch, report, shape, spec.dropout if method == "lora" else 0.0)
    return trace.bytes(), measured.saved_bytes


GRID = [(name, method, head_all, batch, seq)
        for name in ("bert", "distilbert")
        for method in ("full", "lora")
        for head_all in (False, True)
        for batch, seq in ((2, 16), (4, 64))]


@pytest.mark.parametrize("name,method,head_all,batch,seq", GRID)
def test_tiny_models_fp32(models, name, method, head_all, batch, seq):
    predicted, measured = predicted_and_measured(models, name, method, head_all, batch, seq)
    assert abs(predicted / measured - 1) <= TOLERANCE, (predicted, measured)


@pytest.mark.parametrize("method", ["full", "lora"])
@pytest.mark.parametrize("head_all", [False, True])
@pytest.mark.parametrize("batch,seq", [(1, 32), (2, 64)])
def test_bundled_minilm(models, method, head_all, batch, seq):
    predicted, measured = predicted_and_measured(models, "minilm", method, head_all, batch, seq)
    assert abs(predicted / measured - 1) <= TOLERANCE, (predicted, measured)


@pytest.mark.parametrize("name", ["bert", "distilbert", "roberta"])
@pytest.mark.parametrize("method", ["full", "lora"])
def test_bf16_autocast_keeps_half_copies(models, name, method):
    """Mixed precision: half copies of each Linear's input (one per projection) and of its weight."""
    predicted, measured = predicted_and_measured(models, name, method, False, 3, 32, precision="bf16")
    assert abs(predicted / measured - 1) <= TOLERANCE, (predicted, measured)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_gradient_checkpointing(models, method):
    predicted, measured = predicted_and_measured(models, "bert", method, False, 4, 64, checkpointing=True)
    plain, _ = predicted_and_measured(models, "bert", method, False, 4, 64)
    assert abs(predicted / measured - 1) <= TOLERANCE, (predicted, measured)
    assert predicted < plain


@pytest.mark.parametrize("spec", [
    LoraSpec(r=2, alpha=4, dropout=0.0, targets="all-linear"),
    LoraSpec(r=4, alpha=8, dropout=0.1, targets=("query",), modules_to_save=("transform",)),
])
def test_lora_variants(models, spec):
    predicted, measured = predicted_and_measured(models, "bert", "lora", False, 2, 32, spec=spec)
    assert abs(predicted / measured - 1) <= TOLERANCE, (predicted, measured)


def test_replay_is_byte_exact_on_cpu(models):
    """Tighter than the issue's 15%: catches a changed save rule in torch or transformers."""
    for args in (("bert", "full", False, 4, 64), ("bert", "lora", True, 2, 16), ("minilm", "lora", False, 2, 32),
                 ("distilbert", "full", False, 4, 64), ("distilbert", "lora", False, 2, 32)):
        predicted, measured = predicted_and_measured(models, *args)
        assert abs(predicted - measured) <= 0.001 * measured, (args, predicted, measured)


def test_lora_keeps_less_than_full(models):
    lora, _ = predicted_and_measured(models, "bert", "lora", False, 2, 32)
    full, _ = predicted_and_measured(models, "bert", "full", False, 2, 32)
    assert lora < full


# ---------------------------------------------------------------- gradients and optimizer state


def _step(model, arch, optimizer_cls, **kwargs):
    from engine.mlm_head import masked_lm_loss

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = optimizer_cls(trainable, lr=1e-3, **kwargs)
    loss, _ = masked_lm_loss(model, make_batch(2, 16, arch.vocab, 0.2))
    loss.backward()
    optimizer.step()
    grads = sum(p.grad.numel() * p.grad.element_size() for p in trainable if p.grad is not None)
    state = sum(t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values()
                if torch.is_tensor(t))
    return grads, state


@pytest.mark.parametrize("method", ["full", "lora"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gradient_and_adamw_bytes_are_exact(models, method, dtype):
    ref, base = models["bert"]
    arch = load_arch(ref)
    spec = LoraSpec(r=4, targets=("query", "value"))
    model = _wrapped(base, spec if method == "lora" else None).to(dtype)
    grads, state = _step(model, arch, torch.optim.AdamW)
    report = count_params(arch, method, spec)
    size = torch.tensor([], dtype=dtype).element_size()
    assert grads == report.trainable * size
    assert state == optimizer_state_bytes(report.trainable_numels, "adamw", size, include_step=True)


def test_sgd_momentum_bytes_are_exact(models):
    ref, base = models["distilbert"]
    arch = load_arch(ref)
    grads, state = _step(copy.deepcopy(base), arch, torch.optim.SGD, momentum=0.9)
    report = count_params(arch, "full")
    assert state == optimizer_state_bytes(report.trainable_numels, "sgd", 4) == grads


def test_8bit_adamw_is_about_two_bytes_per_parameter():
    numels = [30522 * 768, 768 * 768, 768]  # a big, a middling and a small (32-bit) tensor
    total = optimizer_state_bytes(numels, "adamw8bit", 4)
    big = 2 * numels[0] + 8 * -(-numels[0] // 256)
    assert total == big + 2 * numels[1] + 8 * (numels[1] // 256) + 8 * 768
    assert 2.0 < total / sum(numels) < 2.1
    assert optimizer_state_bytes(numels, "adamw", 4) / sum(numels) == 8
