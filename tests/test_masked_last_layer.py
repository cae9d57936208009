"""engine/mlm_head.py's install(): the last layer's feed-forward part only at masked positions,
with the same loss and gradients as the model's own forward."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import RobertaConfig, RobertaForMaskedLM

from engine import mlm_head as masked_last_layer
from engine.mlm_head import masked_lm_loss, unwrap
from engine.models import load_mlm
from engine.training.config import TrainConfig
from tests.conftest import tiny_config


def tiny_roberta():
    torch.manual_seed(0)
    cfg = RobertaConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=80, pad_token_id=1)
    return RobertaForMaskedLM(cfg)


def model_for(kind: str, request):
    if kind == "roberta":
        return tiny_roberta()
    fixture = {"bert": "tiny_model_dir", "distilbert": "tiny_distilbert_dir"}[kind]
    return load_mlm(request.getfixturevalue(fixture)).model


def batch(vocab: int, padded: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (4, 24), generator=g)
    labels = torch.full_like(ids, -100)
    picked = torch.rand(ids.shape, generator=g) < 0.2
    picked[:, 0] = True  # at least one per row
    labels[picked] = ids[picked]
    ids[picked] = 4
    mask = torch.ones_like(ids)
    if padded:  # the last rows end in padding, never picked
        mask[2:, 18:] = 0
        labels[2:, 18:] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def last_layer(model):
    return masked_last_layer.encoder_layers(unwrap(model).base_model)[-1]


@pytest.mark.parametrize("kind", ["bert", "distilbert", "roberta"])
@pytest.mark.parametrize("padded", [False, True])
def test_loss_and_gradients_equal_the_full_forward(kind, padded, request):
    full = model_for(kind, request).eval()  # eval: no dropout, so both paths see the same numbers
    subset = copy.deepcopy(full)
    assert masked_last_layer.install(unwrap(subset).base_model)
    b = batch(full.config.vocab_size, padded)

    theirs = full(**b).loss
    ours, n = masked_lm_loss(subset, b)
    assert n == int((b["labels"] != -100).sum())
    assert abs(float(ours) - float(theirs)) < 1e-5

    theirs.backward()
    ours.backward()
    named = dict(subset.named_parameters())
    for name, p in full.named_parameters():
        assert torch.allclose(named[name].grad, p.grad, atol=1e-6), name


@pytest.mark.parametrize("kind", ["bert", "distilbert", "roberta"])
def test_the_feed_forward_part_sees_only_the_masked_rows(kind, request):
    model = model_for(kind, request).eval()
    masked_last_layer.install(unwrap(model).base_model)
    layer = last_layer(model)
    ffn_in = layer.intermediate.dense if kind != "distilbert" else layer.ffn.lin1
    first_ffn = masked_last_layer.encoder_layers(unwrap(model).base_model)[0]
    first_in = first_ffn.intermediate.dense if kind != "distilbert" else first_ffn.ffn.lin1
    seen = {}
    ffn_in.register_forward_hook(lambda m, args, out: seen.__setitem__("last", args[0].shape))
    first_in.register_forward_hook(lambda m, args, out: seen.__setitem__("first", args[0].shape))
    b = batch(model.config.vocab_size, padded=False)
    with torch.no_grad():
        masked_lm_loss(model, b)
    n = int((b["labels"] != -100).sum())
    assert seen["last"][0] == n and len(seen["last"]) == 2  # n rows of the whole batch
    assert tuple(seen["first"][:2]) == tuple(b["input_ids"].shape)  # earlier layers run everywhere


def test_outside_the_loss_the_layer_runs_its_own_forward(tiny_model_dir):
    model = load_mlm(tiny_model_dir).model.eval()
    b = batch(model.config.vocab_size, padded=True)
    with torch.no_grad():
        before = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        masked_last_layer.install(unwrap(model).base_model)
        after = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    assert torch.equal(before, after)  # fill-mask and anything else that calls the model as usual


def test_a_deep_copy_runs_its_own_weights(tiny_model_dir):
    original = load_mlm(tiny_model_dir).model.eval()
    masked_last_layer.install(unwrap(original).base_model)
    twin = copy.deepcopy(original)
    with torch.no_grad():
        for p in last_layer(twin).parameters():
            p.mul_(1.5)
    plain_twin = copy.deepcopy(twin)
    b = batch(original.config.vocab_size, padded=True)
    with torch.no_grad():
        subset, _ = masked_lm_loss(twin, b)
        full_logits = twin(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        theirs = plain_twin(**b).loss
        original_logits = original(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    assert abs(float(subset) - float(theirs)) < 1e-5
    assert not torch.allclose(full_logits, original_logits)  # the copy's full path uses the copy's layer


def test_saved_weights_and_config_are_unchanged(tiny_model_dir, tmp_path):
    model = load_mlm(tiny_model_dir).model
    masked_last_layer.install(unwrap(model).base_model)
    model.save_pretrained(tmp_path / "saved")
    again = load_mlm(str(tmp_path / "saved")).model
    assert not masked_last_layer.installed(unwrap(again).base_model)
    assert set(again.state_dict()) == set(model.state_dict())
    assert "mlm" not in (tmp_path / "saved" / "config.json").read_text()


def test_lora_wrapped_models_take_the_subset_path_with_the_same_loss(tiny_model_dir):
    from engine.training import lora

    model = load_mlm(tiny_model_dir).model
    peft_model = lora.wrap_lora(model, TrainConfig(method="lora", lora_r=4), "bert", tiny_model_dir).eval()
    b = batch(model.config.vocab_size, padded=True)
    with torch.no_grad():
        full, _ = masked_lm_loss(peft_model, b)
        assert masked_last_layer.install(unwrap(peft_model).base_model)
        ours, _ = masked_lm_loss(peft_model, b)
    assert masked_last_layer.installed(unwrap(peft_model).base_model)
    assert abs(float(ours) - float(full)) < 1e-6


def test_unknown_layer_shapes_are_left_alone():
    class Plain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.Module()
            self.encoder.layer = torch.nn.ModuleList([torch.nn.Linear(4, 4)])

    plain = Plain()
    assert not masked_last_layer.install(plain)
    assert not masked_last_layer.install(torch.nn.Linear(2, 2))
    assert "forward" not in vars(plain.encoder.layer[0])


def test_training_installs_it(tiny_model_dir, small_corpus, tmp_path, monkeypatch):
    from engine.training.loop import train

    calls = []
    real = masked_last_layer.install
    monkeypatch.setattr(masked_last_layer, "install", lambda base: calls.append(type(base).__name__) or real(base))
    cfg = tiny_config(tiny_model_dir, corpus=small_corpus, chunk_size=64, train_size=8, test_size=4, batch_size=4,
                      max_steps=2, seed=3)
    train(cfg, tmp_path / "run", log=lambda line: None)
    assert calls == ["BertModel"]
