"""The training engine on tiny models: loss, eval set, LoRA, stop and resume, bad input."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.data import corpus as data
from engine.errors import UserError
from engine.mlm_head import masked_lm_loss
from engine.models import load_mlm
from engine.run_folder import RunFolder
from engine.training.batches import mask_rows, seeded_collator, take
from engine.training.checkpoints import list_checkpoints
from engine.training.config import TrainConfig
from engine.training.eval_set import build_eval_set, evaluate, load_eval_set
from engine.training.loop import train
from tests.conftest import tiny_config

IN_PROCESS = {"chunk_size": 64, "train_size": 16, "test_size": 8, "batch_size": 4, "max_steps": 6, "seed": 3}


def tiny_cfg(model_dir: str, corpus, **changes) -> TrainConfig:
    """The shared tiny run (tests.conftest) in 64-token chunks and batches of 4, trained in this process."""
    return tiny_config(model_dir, corpus=corpus, **{**IN_PROCESS, **changes})


def quiet(_line: str) -> None:
    pass


def chunks(tokenizer, corpus, split="train", size=64):
    return data.prepare(corpus, tokenizer, size, 512).chunks[split]


def rows(run_dir: Path, kind: str | None = None) -> list[dict]:
    found, _ = RunFolder(run_dir).metrics()
    return [r for r in found if kind is None or r["kind"] == kind]


# ------------------------------------------------------------------ the loss


@pytest.mark.parametrize("fixture", ["tiny_model_dir", "tiny_distilbert_dir"])
def test_masked_only_loss_equals_the_models_own_loss(fixture, request, tokenizer, small_corpus):
    model = load_mlm(request.getfixturevalue(fixture)).model.eval()
    cfg = TrainConfig(seed=1)
    inputs, labels = mask_rows(seeded_collator(tokenizer, cfg, 1), chunks(tokenizer, small_corpus), np.arange(6))
    with torch.no_grad():
        ours, n = masked_lm_loss(model, {"input_ids": inputs, "labels": labels})
        theirs = model(input_ids=inputs, labels=labels).loss
    assert n == int((labels != -100).sum()) > 0
    assert abs(float(ours) - float(theirs)) < 1e-5


def test_loss_falls_on_a_tiny_corpus(tiny_model_dir, small_corpus, tmp_path):
    # 8 chunks seen again and again (new masks each epoch): the loss must come down.
    cfg = tiny_cfg(tiny_model_dir, small_corpus, train_size=8, batch_size=8, max_steps=40,
                   learning_rate=5e-3, eval_every=20, log_every=5)
    summary = train(cfg, tmp_path, log=quiet)
    losses = [r["loss"] for r in rows(tmp_path, "train")]
    assert losses[-1] < losses[0] - 1.0
    assert summary["eval_perplexity_after"] < summary["eval_perplexity_before"] / 2
    assert [r["step"] for r in rows(tmp_path, "eval")] == [0, 20, 40]
    first = rows(tmp_path, "train")[0]
    assert set(first) == {"kind", "step", "epoch", "loss", "lr", "grad_norm", "samples_per_s",
                          "tokens_per_s", "elapsed_s", "peak_memory_bytes"}
    assert first["tokens_per_s"] == pytest.approx(first["samples_per_s"] * 64, rel=1e-3)
    assert (tmp_path / "final" / "config.json").exists() and (tmp_path / "final" / "tokenizer.json").exists()
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["steps"] == 40 and saved["method"] == "full" and saved["trainable_params"] == saved["total_params"]


# ------------------------------------------------------------------ the eval set


def test_perplexity_is_exp_of_the_token_weighted_mean(tiny_model_dir, tokenizer, small_corpus):
    model = load_mlm(tiny_model_dir).model.eval()
    arrays = build_eval_set(take(chunks(tokenizer, small_corpus, "test"), np.arange(6)), tokenizer, TrainConfig(seed=2))
    labels = arrays["labels"]
    for row in range(3):  # rows 0-2 keep a single masked token: batches now differ in weight
        keep = np.flatnonzero(labels[row] != -100)[0]
        labels[row, keep + 1:] = -100
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(arrays["input_ids"])).logits
    picked = torch.tensor(labels) != -100
    per_token = F.cross_entropy(logits[picked], torch.tensor(labels)[picked], reduction="none")
    token_mean = float(per_token.mean())
    batch_means = [float(per_token[picked[:3].sum():].mean()), float(per_token[:picked[:3].sum()].mean())]

    loss, ppl = evaluate(model, arrays, batch_size=3)
    assert loss == pytest.approx(token_mean, abs=1e-5)
    assert ppl == pytest.approx(math.exp(token_mean), rel=1e-5)
    assert abs(np.mean(batch_means) - token_mean) > 1e-3  # the two averages really differ here


def test_eval_set_is_masked_once_with_the_seed(tokenizer, small_corpus):
    test = take(chunks(tokenizer, small_corpus, "test"), np.arange(8))
    a = build_eval_set(test, tokenizer, TrainConfig(seed=5))
    b = build_eval_set(test, tokenizer, TrainConfig(seed=5))
    c = build_eval_set(test, tokenizer, TrainConfig(seed=6))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["labels"], c["labels"])
    assert all(a[k].dtype == np.int64 for k in a)
    masked = a["labels"] != -100
    assert np.array_equal(a["labels"][masked], test["input_ids"][masked])


def test_whole_word_eval_set_masks_every_piece_of_a_word(tokenizer, small_corpus):
    test = take(chunks(tokenizer, small_corpus, "test"), np.arange(8))
    arrays = build_eval_set(test, tokenizer, TrainConfig(seed=5, whole_word_mask=True, mlm_probability=0.3))
    masked, words = arrays["labels"] != -100, test["word_ids"]
    multi_piece = 0
    for row in range(len(words)):
        for word in np.unique(words[row][masked[row]]):
            pieces = masked[row][words[row] == word]
            assert pieces.all()
            multi_piece += len(pieces) > 1
    assert multi_piece > 0


# ------------------------------------------------------------------ LoRA


def test_lora_trains_only_the_adapter_and_reloads(tiny_model_dir, small_corpus, tmp_path):
    cfg = tiny_cfg(tiny_model_dir, small_corpus, method="lora", lora_r=4, learning_rate=1e-2)
    summary = train(cfg, tmp_path, log=quiet)
    # 2 layers x (query, value) x r x (in 32 + out 32)
    assert summary["trainable_params"] == 2 * 2 * 4 * 64 < summary["total_params"]
    adapter = json.loads((tmp_path / "final" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(Path(tiny_model_dir).resolve())
    assert sorted(adapter["target_modules"]) == ["query", "value"]
    assert not (tmp_path / "final" / "model.safetensors").exists()

    reloaded = load_mlm(str(tmp_path / "final")).model
    eval_set = load_eval_set(tmp_path)
    _, ppl = evaluate(reloaded, eval_set, 4)
    assert ppl == pytest.approx(summary["eval_perplexity_after"], rel=1e-5)
    _, base_ppl = evaluate(load_mlm(tiny_model_dir).model, eval_set, 4)
    assert base_ppl == pytest.approx(summary["eval_perplexity_before"], rel=1e-5)
    assert abs(ppl - base_ppl) > 1e-3


def test_lora_wrapping_freezes_everything_but_lora(tiny_distilbert_dir):
    from engine.training.lora import wrap_lora

    model = wrap_lora(load_mlm(tiny_distilbert_dir).model, TrainConfig(method="lora"), "distilbert", "x")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any("q_lin" in n for n in trainable) and any("v_lin" in n for n in trainable)


def test_no_weight_decay_on_biases_and_layer_norms(tiny_distilbert_dir):
    from engine.training.optim import param_groups

    model = load_mlm(tiny_distilbert_dir).model
    decay, no_decay = param_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    decay_names = [names[id(p)] for p in decay["params"]]
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert not any(n.endswith("bias") or "layer_norm" in n for n in decay_names)
    assert "distilbert.transformer.layer.0.sa_layer_norm.weight" in no_decay_names
    assert "distilbert.transformer.layer.0.attention.q_lin.weight" in decay_names


# ------------------------------------------------------------------ stop and resume


def test_should_stop_stops_at_the_next_step_with_a_checkpoint(tiny_model_dir, small_corpus, tmp_path):
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) >= 3

    summary = train(tiny_cfg(tiny_model_dir, small_corpus, max_steps=20), tmp_path, should_stop, log=quiet)
    assert summary["stopped"] is True and summary["steps"] == 3
    assert [step for step, _ in list_checkpoints(tmp_path)] == [3]
    assert max(r["step"] for r in rows(tmp_path)) == 3
    assert not (tmp_path / "final").exists() and not (tmp_path / "summary.json").exists()


def test_resume_continues_to_the_same_end_as_an_uninterrupted_run(tiny_model_dir, small_corpus, tmp_path):
    cfg = dict(max_steps=10, log_every=2, eval_every=4, save_every=4)
    straight = train(tiny_cfg(tiny_model_dir, small_corpus, **cfg), tmp_path / "a", log=quiet)

    run = tmp_path / "b"
    stop_after = iter([False] * 5 + [True])
    train(tiny_cfg(tiny_model_dir, small_corpus, **cfg), run, lambda: next(stop_after), log=quiet)
    assert [s for s, _ in list_checkpoints(run)] == [4, 6]
    # As if the worker died at step 7 after its checkpoint at 6 was lost: resume from 4.
    import shutil

    shutil.rmtree(run / "checkpoints" / "step-6")
    RunFolder(run).append_metric({"kind": "train", "step": 7, "loss": 99.0})
    eval_digest = hashlib.sha1((run / "eval_set.npz").read_bytes()).hexdigest()

    resumed = train(tiny_cfg(tiny_model_dir, small_corpus, **cfg), run, resume=True, log=quiet)
    assert resumed["steps"] == straight["steps"] == 10 and resumed["stopped"] is False
    assert hashlib.sha1((run / "eval_set.npz").read_bytes()).hexdigest() == eval_digest
    a, b = rows(tmp_path / "a"), rows(run)
    assert [(r["kind"], r["step"]) for r in b] == [(r["kind"], r["step"]) for r in a]
    for ra, rb in zip(a, b):
        key = "loss" if ra["kind"] == "train" else "eval_loss"
        assert rb[key] == pytest.approx(ra[key], rel=1e-4)
    assert resumed["eval_perplexity_after"] == pytest.approx(straight["eval_perplexity_after"], rel=1e-4)
    assert resumed["eval_perplexity_before"] == straight["eval_perplexity_before"]


# ------------------------------------------------------------------ bad input


def test_unknown_lora_targets_name_the_existing_layers(tiny_model_dir, small_corpus, tmp_path):
    cfg = tiny_cfg(tiny_model_dir, small_corpus, method="lora", lora_targets=["query", "q_proj"])
    with pytest.raises(UserError, match="q_proj") as err:
        train(cfg, tmp_path, log=quiet)
    assert "query" in str(err.value) and "dense" in str(err.value)


def test_corpus_smaller_than_one_chunk(tiny_model_dir, tmp_path):
    corpus = data.CorpusConfig(source="rotten_tomatoes", max_docs=4, test_fraction=0.5, seed=0)
    with pytest.raises(UserError, match="fewer than one chunk"):
        train(tiny_cfg(tiny_model_dir, corpus, chunk_size=512), tmp_path, log=quiet)


@pytest.mark.parametrize("change, message", [
    ({"learning_rate": 0}, "Learning rate must be above 0"),
    ({"batch_size": 0}, "Batch size must be at least 1"),
    ({"max_steps": 0, "epochs": 0}, "max steps of at least 1"),
])
def test_bad_settings_stop_before_training(change, message, tiny_model_dir, small_corpus, tmp_path):
    with pytest.raises(UserError, match=message):
        train(tiny_cfg(tiny_model_dir, small_corpus, **change), tmp_path, log=quiet)
    assert not (tmp_path / "metrics.jsonl").exists()


def test_lora_can_train_the_head_transform_too(tiny_model_dir, small_corpus, tmp_path):
    """For a model without a trained head (the bundled MiniLM) the head's transform trains in
    full next to LoRA; the tied vocabulary matrix stays frozen and out of the adapter."""
    from engine.compare.model_cache import ModelCache

    cfg = tiny_cfg(tiny_model_dir, small_corpus, method="lora", lora_r=4, learning_rate=1e-2, lora_train_head=True)
    summary = train(cfg, tmp_path, log=quiet)
    # LoRA as before, plus the transform's dense (32 x 32 + 32) and LayerNorm (32 + 32)
    assert summary["trainable_params"] == 2 * 2 * 4 * 64 + (32 * 32 + 32) + 64
    reloaded = load_mlm(str(tmp_path / "final")).model
    _, ppl = evaluate(reloaded, load_eval_set(tmp_path), 4)
    assert ppl == pytest.approx(summary["eval_perplexity_after"], rel=1e-5)

    # The Compare tab's shared-base cache applies it too.
    cache = ModelCache(cap=3)
    view = cache.get(str(tmp_path / "final"))
    with cache.activate(view) as model:
        _, cached_ppl = evaluate(model, load_eval_set(tmp_path), 4)
    assert cached_ppl == pytest.approx(summary["eval_perplexity_after"], rel=1e-5)


def test_head_training_without_a_known_head_is_refused():
    from engine.training.lora import head_modules

    with pytest.raises(UserError, match="not set up for model type"):
        head_modules(TrainConfig(method="lora", lora_train_head=True), "gpt2")
