"""EuroBERT, the second modern encoder family, on a tiny locally built config: Llama-style layers
(grouped-query attention, SwiGLU, RMSNorm, rotary positions, 8,192 tokens) and an MLM head that is
the vocabulary projection alone. Load, the masked-only head, full and LoRA steps, fill-mask and a
classifier; what it cannot do (train a head transform it does not have) is refused by name."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.errors import UserError
from engine.mlm_head import install, masked_lm_loss, unwrap
from engine.models import load_mlm
from engine.training.batches import mask_rows, seeded_collator
from engine.training.config import TrainConfig
from engine.training.loop import train
from tests.conftest import tiny_config

IN_PROCESS = {"chunk_size": 64, "train_size": 16, "test_size": 8, "batch_size": 4, "max_steps": 4, "seed": 3}


def test_loads_with_its_facts(tiny_eurobert_dir):
    info = load_mlm(tiny_eurobert_dir).info
    assert (info.model_type, info.layers, info.hidden_size, info.heads) == ("eurobert", 2, 32, 2)
    assert info.max_length == 8192 and info.head_trained


def test_the_masked_only_loss_and_gradients_equal_the_models_own(tiny_eurobert_dir, small_corpus):
    from engine.data import corpus as data

    loaded = load_mlm(tiny_eurobert_dir)
    model = loaded.model.train()
    chunks = data.prepare(small_corpus, loaded.tokenizer, 64, 8192).chunks["train"]
    inputs, labels = mask_rows(seeded_collator(loaded.tokenizer, TrainConfig(seed=1), 1), chunks, np.arange(6))
    theirs = model(input_ids=inputs, labels=labels).loss
    theirs.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    assert install(unwrap(model).base_model)  # its last layer's SwiGLU runs on the masked rows only
    ours, _ = masked_lm_loss(model, {"input_ids": inputs, "labels": labels})
    ours.backward()
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-5)
    for name, p in model.named_parameters():
        assert torch.allclose(p.grad, expected[name], atol=1e-6), name


@pytest.mark.parametrize("method", ["full", "lora"])
def test_a_few_steps_train_and_reload(method, tiny_eurobert_dir, small_corpus, tmp_path):
    cfg = tiny_config(tiny_eurobert_dir, corpus=small_corpus, method=method, whole_word_mask=True,
                      learning_rate=1e-2 if method == "lora" else 2e-3, **IN_PROCESS)
    summary = train(cfg, tmp_path, log=lambda line: None)
    assert summary["steps"] == 4 and summary["eval_perplexity_after"] != summary["eval_perplexity_before"]
    if method == "lora":
        adapter = json.loads((tmp_path / "final" / "adapter_config.json").read_text())
        assert sorted(adapter["target_modules"]) == ["q_proj", "v_proj"]
        # 2 layers: q_proj (32 -> 32) and v_proj (32 -> 16: one key/value head of 16) at r = 8
        assert summary["trainable_params"] == 2 * ((32 + 32) * 8 + (32 + 16) * 8)
    assert load_mlm(str(tmp_path / "final")).info.model_type == "eurobert"


def test_training_a_head_transform_it_does_not_have_is_refused(tiny_eurobert_dir):
    from engine.training.lora import head_modules

    with pytest.raises(UserError, match="not set up for model type .eurobert.: it has no head transform"):
        head_modules(TrainConfig(model=tiny_eurobert_dir, method="lora", lora_train_head=True), "eurobert")


def test_fill_mask_agrees_with_the_transformers_pipeline(tiny_eurobert_dir):
    from transformers import pipeline

    from engine.compare.predictions import fill_mask

    loaded = load_mlm(tiny_eurobert_dir)
    ours = fill_mask(loaded.model, loaded.tokenizer, "the film was [MASK] .", top_k=3)
    theirs = pipeline("fill-mask", model=tiny_eurobert_dir, top_k=3)("the film was [MASK] .")
    assert [p.token for p in ours.masks[0]] == [t["token_str"].strip() for t in theirs]
    assert ours.masks[0][0].probability == pytest.approx(theirs[0]["score"], abs=1e-4)


def test_a_lora_classifier_trains_its_head_in_full(tiny_eurobert_dir, tmp_path):
    from engine.data.corpus import CorpusConfig
    from engine.training.classify.config import ClassifyConfig
    from engine.training.classify.loop import train_classifier

    cfg = ClassifyConfig(model=tiny_eurobert_dir, corpus=CorpusConfig(source="imdb", max_docs=200, seed=0),
                         method="lora", train_size=32, test_size=16, max_length=48, batch_size=8)
    summary = train_classifier(cfg, tmp_path, log=lambda line: None)
    adapter = json.loads((tmp_path / "final" / "adapter_config.json").read_text())
    assert set(adapter["modules_to_save"]) >= {"dense", "classifier"} and summary["steps"] == 4
