"""The compiled training step (engine/training/compiled.py): same losses as eager, a clean
fallback when torch.compile is unavailable, and the static loss it compiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.data import corpus as data
from engine.mlm_head import masked_lm_loss, static_masked_lm_loss
from engine.models import load_mlm
from engine.run_folder import RunFolder
from engine.training import compiled
from engine.training.batches import mask_rows, seeded_collator
from engine.training.config import TrainConfig
from engine.training.loop import train


@pytest.fixture(scope="module")
def no_dropout_model(tmp_path_factory) -> str:
    """The tiny BERT without dropout: compiled and eager dropout draw different masks."""
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

    from engine.models import build_tiny_model

    src = build_tiny_model(tmp_path_factory.mktemp("tiny"), "bert")
    cfg = AutoConfig.from_pretrained(src, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    out = tmp_path_factory.mktemp("tiny-no-dropout")
    AutoModelForMaskedLM.from_pretrained(src, config=cfg).save_pretrained(out)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    return str(out)


def run(model_dir: str, corpus, run_dir: Path, mode: str) -> tuple[list[float], list[str]]:
    cfg = TrainConfig(model=model_dir, corpus=corpus, chunk_size=32, train_size=8, test_size=4, batch_size=4,
                      max_steps=3, learning_rate=1e-3, eval_every=0, log_every=1, save_every=0, seed=3,
                      compile=mode)
    lines: list[str] = []
    train(cfg, run_dir, log=lines.append)
    rows, _ = RunFolder(run_dir).metrics()
    return [r["loss"] for r in rows if r["kind"] == "train"], lines


def test_compiled_step_gives_the_eager_losses(no_dropout_model, small_corpus, tmp_path):
    eager, _ = run(no_dropout_model, small_corpus, tmp_path / "eager", "off")
    fast, lines = run(no_dropout_model, small_corpus, tmp_path / "compiled", "on")
    assert len(fast) == len(eager) == 3
    assert fast == pytest.approx(eager, abs=2e-4)
    assert any(line.startswith("torch.compile (default)") and line.endswith(" s") for line in lines), lines


def test_training_falls_back_to_eager_when_compile_raises(no_dropout_model, small_corpus, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    eager, _ = run(no_dropout_model, small_corpus, tmp_path / "eager", "off")
    fallback, lines = run(no_dropout_model, small_corpus, tmp_path / "fallback", "cudagraphs")
    assert fallback == eager
    assert any("torch.compile unavailable (RuntimeError: no compiler here)" in line for line in lines)


def test_a_failing_first_compiled_call_falls_back_to_eager(no_dropout_model, small_corpus, tmp_path, monkeypatch):
    def compiles_but_fails_when_called(module, **kwargs):
        def call(*args):
            raise RuntimeError("backend compiler failed")
        return call

    monkeypatch.setattr(torch, "compile", compiles_but_fails_when_called)
    eager, _ = run(no_dropout_model, small_corpus, tmp_path / "eager", "off")
    fallback, lines = run(no_dropout_model, small_corpus, tmp_path / "fallback", "on")
    assert fallback == eager
    assert any("backend compiler failed" in line for line in lines)


def test_an_unknown_compile_mode_is_refused():
    from engine.errors import UserError

    with pytest.raises(UserError, match="Compile must be one of"):
        compiled.CompiledStep(torch.nn.Linear(2, 2), "fast", torch.device("cpu"), print)


@pytest.mark.parametrize("fixture", ["tiny_model_dir", "tiny_distilbert_dir"])
def test_static_loss_and_gradients_equal_the_masked_loss(fixture, request, tokenizer, small_corpus):
    from engine import mlm_head as masked_last_layer

    model = load_mlm(request.getfixturevalue(fixture)).model.eval()  # eval: no dropout
    masked_last_layer.install(model.base_model)
    columns = data.prepare(small_corpus, tokenizer, 32, 512).chunks["train"]
    ids, labels = mask_rows(seeded_collator(tokenizer, TrainConfig(seed=1), 1), columns, np.arange(4))
    count = int((labels != -100).sum())

    def grads(loss):
        model.zero_grad()
        loss.backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    ours = masked_lm_loss(model, {"input_ids": ids, "labels": labels})[0]
    ours_grads = grads(ours)
    static = static_masked_lm_loss(model, ids, labels, compiled.capacity_for(count))
    assert static.item() == pytest.approx(ours.item(), rel=1e-6)
    for a, b in zip(ours_grads, grads(static), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_capacity_rounds_up_and_never_shrinks():
    first = compiled.capacity_for(1229)
    assert first >= 1229 and first % compiled.CAPACITY_MULTIPLE == 0
    assert compiled.capacity_for(1100, first) == first  # a smaller epoch reuses the graph
    assert compiled.capacity_for(first + 1, first) > first


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")
@pytest.mark.parametrize("accum", [1, 2])
def test_cuda_graphs_give_the_eager_losses_on_a_gpu(no_dropout_model, small_corpus, tmp_path, accum):
    """Run by bench/gpu_check.sh's device run: fp32 so that eager and compiled do the same arithmetic;
    with accumulation, a step's second micro-batch must not overwrite the first one's gradients."""
    def losses(mode: str) -> tuple[list[float], list[str]]:
        cfg = TrainConfig(model=no_dropout_model, corpus=small_corpus, chunk_size=32, train_size=16, test_size=4,
                          batch_size=4, grad_accum_steps=accum, max_steps=4, learning_rate=1e-3, eval_every=0,
                          log_every=1, save_every=0, seed=3, precision="fp32", compile=mode)
        lines: list[str] = []
        train(cfg, tmp_path / f"{mode}-{accum}", log=lines.append)
        rows, _ = RunFolder(tmp_path / f"{mode}-{accum}").metrics()
        return [r["loss"] for r in rows if r["kind"] == "train"], lines

    eager, _ = losses("off")
    graphs, lines = losses("cudagraphs")
    assert any(line.startswith("torch.compile (reduce-overhead)") for line in lines), lines
    assert graphs == pytest.approx(eager, abs=1e-3)
