"""engine/architectures.py: one table of architecture facts, and one "is the MLM head trained?"
rule that training, the model panels and the Compare tab all follow."""

from __future__ import annotations

import pytest

from engine.compare.model_cache import ModelCache
from engine.models import load_mlm
from engine.training import lora
from engine.training.config import TrainConfig


@pytest.fixture(scope="module")
def headless_dir(tmp_path_factory) -> str:
    """A tiny BERT saved without an MLM head, as the bundled MiniLM ships."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from engine.models import bundled_dir

    out = tmp_path_factory.mktemp("headless")
    tok = AutoTokenizer.from_pretrained(str(bundled_dir()))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64)
    BertModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def adapter(headless_dir: str, out, train_head: bool) -> str:
    """What a LoRA run on a headless model saves as final/ (with or without the head transform)."""
    cfg = TrainConfig(model=headless_dir, method="lora", lora_r=4, lora_train_head=train_head)
    model = lora.wrap_lora(load_mlm(headless_dir).model, cfg, "bert", headless_dir)
    model.save_pretrained(out)
    return str(out)


def test_a_headless_model_says_its_head_is_untrained(headless_dir):
    assert load_mlm(headless_dir).info.head_trained is False
    assert ModelCache(cap=2).get(headless_dir).info.head_trained is False


@pytest.mark.parametrize("train_head", [True, False])
def test_lora_with_the_head_transform_trains_the_head(headless_dir, tmp_path, train_head):
    """The default LoRA run on the bundled MiniLM trains the head's transform: Compare (the model
    cache) and a plain load must not call that head untrained; plain LoRA leaves it random."""
    folder = adapter(headless_dir, tmp_path / "final", train_head)
    view = ModelCache(cap=2).get(folder)
    assert view.kind == "lora"
    assert view.info.head_trained is train_head
    assert ("untrained" in view.info.note) is not train_head
    assert load_mlm(folder).info.head_trained is train_head


def test_lora_heads_come_from_the_table():
    from engine.architectures import HEAD_TRANSFORM, LORA_TARGETS

    assert lora.target_modules(TrainConfig(method="lora"), "distilbert") == LORA_TARGETS["distilbert"]
    cfg = TrainConfig(method="lora", lora_train_head=True)
    assert lora.head_modules(cfg, "roberta") == HEAD_TRANSFORM["roberta"]


def test_costs_and_training_read_the_same_table():
    import ast
    from pathlib import Path

    from engine.architectures import LORA_TARGETS
    from engine.costs import arch

    assert arch.LORA_TARGETS is LORA_TARGETS
    root = Path(__file__).resolve().parent.parent / "engine" / "costs"
    for path in root.glob("*.py"):
        imported = [n.module or "" for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ImportFrom)]
        assert not any(m.startswith("engine.training") for m in imported), path.name


def test_the_rule():
    from engine.architectures import head_trained

    assert head_trained([]) is True
    assert head_trained(["cls.predictions.bias"]) is False
    assert head_trained(["cls.predictions.bias"], ["transform"]) is True
    assert head_trained(["vocab_projector.bias"], ["vocab_transform", "vocab_layer_norm"]) is True
    assert head_trained(["lm_head.dense.weight"], ["classifier"]) is False
