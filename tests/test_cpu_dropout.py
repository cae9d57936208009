"""engine/cpu_dropout.py: the cheaper CPU dropout drops what nn.Dropout would, in
expectation, and changes nothing outside training."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from engine.models import load_mlm
from engine.training import cpu_dropout
from engine.training.cpu_dropout import CpuDropout, cheap_dropout, keep_mask


@pytest.mark.parametrize("p", [0.1, 0.5, 0.02])
def test_drop_rate_and_mean_match_p_at_even_and_odd_positions(p):
    torch.manual_seed(0)
    n = 2_000_000
    keep, scale = keep_mask(torch.Size([n]), p, torch.device("cpu"))
    tolerance = 5 * math.sqrt(p * (1 - p) / (n / 2))
    # Each 32-bit draw feeds two positions: both halves must be uniform (a 31-bit draw would not be).
    for half in (keep[0::2], keep[1::2]):
        assert abs((~half).float().mean().item() - p) < tolerance
    assert scale == pytest.approx(1 / (1 - p), rel=1e-4)
    out = cheap_dropout(torch.ones(n), p)
    assert abs(out.mean().item() - 1.0) < 5 * math.sqrt(p / (1 - p) / n)  # unbiased
    values = out.unique().tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(scale)


def test_same_seed_same_mask_and_the_gradient_is_the_mask():
    x = torch.randn(64, 33, requires_grad=True)
    torch.manual_seed(3)
    y = cheap_dropout(x, 0.3)
    torch.manual_seed(3)
    assert torch.equal(y, cheap_dropout(x, 0.3))
    y.sum().backward()
    _, scale = keep_mask(torch.Size([1]), 0.3, x.device)
    expected = (y != 0).float() * scale
    assert torch.allclose(x.grad, expected)


def test_module_is_identity_in_eval_and_at_the_extremes():
    x = torch.randn(10, 10)
    drop = CpuDropout(0.5)
    drop.eval()
    assert torch.equal(drop(x), x)
    drop.train()
    assert torch.equal(cheap_dropout(x, 0.0), x)
    assert torch.equal(cheap_dropout(x, 1.0), torch.zeros_like(x))


class _Attn(nn.Module):
    is_causal = False


@pytest.mark.parametrize("kind", ["bool", "additive", "none"])
def test_attention_without_dropout_equals_sdpa(kind):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 10, 8) for _ in range(3))
    mask = None
    if kind != "none":
        mask = torch.ones(2, 1, 10, 10, dtype=torch.bool)
        mask[..., 7:] = False  # three padded keys
        if kind == "additive":
            mask = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)
    ref, _ = cpu_dropout.sdpa_attention_forward(_Attn(), q, k, v, mask, dropout=0.0)
    # A p so small that nothing is dropped still takes the hand-written path.
    mine, _ = cpu_dropout.attention(_Attn(), q, k, v, mask, dropout=1e-9)
    assert torch.allclose(ref, mine, atol=1e-6)


def test_attention_dropout_keeps_padded_keys_out():
    torch.manual_seed(0)
    q, k = torch.randn(1, 2, 6, 4), torch.randn(1, 2, 6, 4)
    v = torch.zeros(1, 2, 6, 4)
    v[:, :, 4:] = 1000.0  # only the padded keys carry a signal
    mask = torch.ones(1, 1, 6, 6, dtype=torch.bool)
    mask[..., 4:] = False
    out, _ = cpu_dropout.attention(_Attn(), q, k, v, mask, dropout=0.5)
    assert out.abs().max().item() == 0.0


def test_installed_model_matches_outside_training_and_uninstalls_cleanly(tiny_model_dir, tmp_path):
    model = load_mlm(tiny_model_dir).model.eval()
    ids = torch.randint(5, 90, (3, 16))
    mask = torch.ones_like(ids)
    mask[0, 10:] = 0
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=mask).logits
    state = cpu_dropout.install(model)
    assert any(isinstance(m, CpuDropout) for m in model.modules())
    assert model.config._attn_implementation == cpu_dropout.ATTENTION
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, before)
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0
        model.train()  # training mode, nothing dropped: the hand-written attention path
        assert torch.allclose(model(input_ids=ids, attention_mask=mask).logits, before, atol=1e-5)
    model.save_pretrained(tmp_path / "saved")
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert cpu_dropout.ATTENTION not in json.dumps(config)  # a saved model loads anywhere
    cpu_dropout.uninstall(state)
    assert not any(isinstance(m, CpuDropout) for m in model.modules())
    assert model.config._attn_implementation == "sdpa"


def test_native_dropout_can_be_asked_for(monkeypatch):
    monkeypatch.delenv("MLM_NATIVE_DROPOUT", raising=False)
    assert cpu_dropout.wanted()
    monkeypatch.setenv("MLM_NATIVE_DROPOUT", "1")
    assert not cpu_dropout.wanted()
