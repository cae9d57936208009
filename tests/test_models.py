"""engine.models: references, the model panel facts, the tokenization view."""

from __future__ import annotations

import pytest

from engine.errors import UserError
from engine.models import (
    BUNDLED_NAME,
    build_tiny_model,
    bundled_dir,
    default_model_ref,
    load_mlm,
    load_tokenizer,
    model_bytes,
    resolve,
    tokenization_view,
)


def test_offline_default_is_the_bundled_model():
    assert default_model_ref() == "bundled"
    assert resolve("bundled") == resolve("") == resolve(BUNDLED_NAME) == str(bundled_dir())


def test_unknown_hub_id_offline_says_use_bundled():
    with pytest.raises(UserError, match="not available offline.*'bundled' or a local folder"):
        resolve("distilbert-base-uncased")


def test_missing_and_non_model_folders(tmp_path):
    with pytest.raises(UserError, match="No model folder at"):
        resolve(str(tmp_path / "nope"))
    with pytest.raises(UserError, match="holds no config.json"):
        resolve(str(tmp_path))
    with pytest.raises(UserError, match="neither a folder nor a Hub model id"):
        resolve("a/b/c")


def test_bundled_panel_says_head_untrained():
    loaded = load_mlm("bundled")
    info = loaded.info
    assert (info.layers, info.hidden_size, info.heads, info.vocab_size, info.max_length) == (6, 384, 12, 30522, 512)
    assert 22e6 < info.parameters < 24e6  # MiniLM-L6: ~22.7M (the course's DistilBERT is 67M)
    assert info.head_trained is False and "untrained until fine-tuned" in info.note
    assert info.mask_token == "[MASK]"


def test_bundled_head_is_the_same_on_every_load():
    a, b = load_mlm("bundled").model, load_mlm("bundled").model
    wa = a.cls.predictions.transform.dense.weight
    assert wa.equal(b.cls.predictions.transform.dense.weight)


def test_tiny_models(tiny_model_dir, tiny_distilbert_dir):
    bert = load_mlm(tiny_model_dir).info
    assert (bert.layers, bert.hidden_size, bert.heads, bert.head_trained, bert.note) == (2, 32, 2, True, "")
    distil = load_mlm(tiny_distilbert_dir).info
    assert (distil.model_type, distil.layers, distil.hidden_size) == ("distilbert", 2, 32)


def test_unknown_tiny_architecture(tmp_path):
    with pytest.raises(UserError, match="use 'bert', 'distilbert', 'modernbert' or 'eurobert'"):
        build_tiny_model(tmp_path, "gpt")


def test_model_bytes_counts_weights_once(tiny_model_dir):
    model = load_mlm(tiny_model_dir).model
    params = {id(p): p for p in model.parameters()}  # the tied decoder weight once
    want = sum(p.numel() * 4 for p in params.values()) + sum(b.numel() * b.element_size() for b in model.buffers())
    assert model_bytes(model) == want


def test_tokenization_view_shows_tokens_ids_and_mask():
    tok = load_tokenizer("bundled")
    rows = tokenization_view(tok, "This is a great [MASK].")
    assert [r["token"] for r in rows] == ["[CLS]", "this", "is", "a", "great", "[MASK]", ".", "[SEP]"]
    assert rows[5]["id"] == tok.mask_token_id and all(r["attention_mask"] == 1 for r in rows)
    assert len(tokenization_view(tok, "word " * 2000, max_tokens=64)) == 64
