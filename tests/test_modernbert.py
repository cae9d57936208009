"""ModernBERT end to end on a tiny locally built config (engine.models.build_tiny_model):
load, the model panel, masking defaults, the masked-only head, a few full and LoRA steps,
fill-mask, long chunks and what is refused. The cost model's ModernBERT tests live in
tests/test_costs_modernbert.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.architectures import masking_default
from engine.errors import UserError
from engine.mlm_head import install, installed, masked_lm_loss, unwrap
from engine.models import load_mlm, max_length_of, model_type_of
from engine.training.batches import mask_rows, seeded_collator
from engine.training.config import TrainConfig
from engine.training.loop import train
from tests.conftest import tiny_config

IN_PROCESS = {"chunk_size": 64, "train_size": 16, "test_size": 8, "batch_size": 4, "max_steps": 4, "seed": 3}


def quiet(_line: str) -> None:
    pass


def masked_batch(tokenizer, corpus, size: int = 64, rows: int = 6, rate: float = 0.3):
    from engine.data import corpus as data

    chunks = data.prepare(corpus, tokenizer, size, 8192).chunks["train"]
    return mask_rows(seeded_collator(tokenizer, TrainConfig(seed=1, mlm_probability=rate), 1), chunks,
                     np.arange(rows))


# ---------------------------------------------------------------- load and the model panel


def test_loads_with_its_facts(tiny_modernbert_dir):
    info = load_mlm(tiny_modernbert_dir).info
    assert info.model_type == "modernbert"
    assert (info.layers, info.hidden_size, info.heads) == (3, 32, 2)
    assert info.max_length == 8192 == max_length_of(tiny_modernbert_dir)
    assert info.head_trained and info.mask_token == "[MASK]"


def test_an_encoder_saved_without_its_mlm_head_is_shown_untrained(tiny_modernbert_dir, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    AutoModel.from_pretrained(tiny_modernbert_dir).save_pretrained(tmp_path)  # ModernBertModel: no head/decoder
    AutoTokenizer.from_pretrained(tiny_modernbert_dir).save_pretrained(tmp_path)
    info = load_mlm(str(tmp_path)).info
    assert not info.head_trained and "untrained" in info.note


# ---------------------------------------------------------------- masking


def test_the_default_masking_rate_is_its_own_30_percent_with_the_reason(tiny_modernbert_dir, tiny_model_dir):
    rate, reason = masking_default(model_type_of(tiny_modernbert_dir))
    assert rate == 0.30 and "ModernBERT" in reason and "30%" in reason
    assert masking_default(model_type_of(tiny_model_dir))[0] == 0.15


def test_the_train_form_offers_the_rate_but_keeps_a_typed_one(tiny_modernbert_dir, tiny_model_dir):
    from components.training_form import model_changed

    targets, _, prob = model_changed(tiny_modernbert_dir, "lora", 0.15)
    assert targets == "Wqkv" and prob.value == 0.30 and "30%" in prob.info
    assert model_changed(tiny_modernbert_dir, "full", 0.2)[2].value == 0.2  # the user's own choice stays
    assert model_changed(tiny_model_dir, "full", 0.30)[2].value == 0.15  # back to BERT's default


def test_the_masking_tab_moves_its_slider_to_the_models_default(tiny_modernbert_dir, tiny_model_dir):
    from components.masking import model_rate

    value, note = model_rate(tiny_modernbert_dir, 0.15)
    assert value == 0.30 and "30%" in note
    assert model_rate(tiny_model_dir, 0.30)[0] == 0.15
    assert model_rate(tiny_model_dir, 0.42)[0] == 0.42


def test_the_collator_masks_30_percent_with_its_tokenizer(tiny_modernbert_dir, small_corpus):
    from engine.models import load_tokenizer

    tokenizer = load_tokenizer(tiny_modernbert_dir)
    inputs, labels = masked_batch(tokenizer, small_corpus, rows=32)
    share = float((labels != -100).sum()) / labels.numel()
    assert 0.25 < share < 0.35
    assert int((inputs == tokenizer.mask_token_id).sum()) > 0


# ---------------------------------------------------------------- the masked-only head


def test_the_masked_only_loss_and_gradients_equal_the_models_own(tiny_modernbert_dir, small_corpus):
    loaded = load_mlm(tiny_modernbert_dir)
    model = loaded.model.train()
    inputs, labels = masked_batch(loaded.tokenizer, small_corpus)
    theirs = model(input_ids=inputs, labels=labels).loss
    theirs.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    # the last layer's GeGLU then runs on the masked rows only
    assert install(unwrap(model).base_model) and installed(unwrap(model).base_model)
    ours, n = masked_lm_loss(model, {"input_ids": inputs, "labels": labels})
    ours.backward()
    assert n == int((labels != -100).sum()) > 0
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-5)
    for name, p in model.named_parameters():
        assert torch.allclose(p.grad, expected[name], atol=1e-6), name


def test_cpu_speedups_install_on_it(tiny_modernbert_dir, monkeypatch):
    from engine.training import cpu_speedups

    monkeypatch.setenv("MLM_DEFAULT_MALLOC", "1")  # leave this process's malloc alone
    model = load_mlm(tiny_modernbert_dir).model
    done = cpu_speedups.install(model, "cpu")
    try:
        assert done.last_layer
        out = model(input_ids=torch.tensor([[101, 2023, 103, 102]]))
        assert out.logits.shape == (1, 4, model.config.vocab_size)
    finally:
        done.uninstall()


# ---------------------------------------------------------------- training


@pytest.mark.parametrize("method", ["full", "lora"])
def test_a_few_steps_train_and_reload(method, tiny_modernbert_dir, small_corpus, tmp_path):
    changes = {"method": method, "learning_rate": 1e-2 if method == "lora" else 2e-3, "mlm_probability": 0.3}
    cfg = tiny_config(tiny_modernbert_dir, corpus=small_corpus, **{**IN_PROCESS, **changes})
    summary = train(cfg, tmp_path, log=quiet)
    assert summary["steps"] == 4
    assert summary["eval_perplexity_after"] != summary["eval_perplexity_before"]
    final = tmp_path / "final"
    if method == "lora":
        adapter = json.loads((final / "adapter_config.json").read_text())
        assert adapter["target_modules"] == ["Wqkv"]
        # 3 layers x Wqkv (32 -> 96) x r 8: (32 + 96) * 8 each
        assert summary["trainable_params"] == 3 * (32 + 96) * 8
    reloaded = load_mlm(str(final))
    assert reloaded.info.model_type == "modernbert" and reloaded.info.head_trained


def test_lora_with_the_head_transform_saves_the_head(tiny_modernbert_dir, small_corpus, tmp_path):
    cfg = tiny_config(tiny_modernbert_dir, corpus=small_corpus, method="lora", lora_train_head=True,
                      learning_rate=1e-2, **IN_PROCESS)
    train(cfg, tmp_path, log=quiet)
    adapter = json.loads((tmp_path / "final" / "adapter_config.json").read_text())
    assert adapter["modules_to_save"] == ["head"]


def test_long_chunks_train(tiny_modernbert_dir, small_corpus, tmp_path):
    # 1,024-token chunks: past BERT's 512 and eight times the local window of this model.
    cfg = tiny_config(tiny_modernbert_dir, corpus=small_corpus, chunk_size=1024, train_size=4, test_size=2,
                      batch_size=2, max_steps=2, seed=3)
    summary = train(cfg, tmp_path, log=quiet)
    assert summary["steps"] == 2


# ---------------------------------------------------------------- what is refused


def test_a_chunk_past_its_maximum_is_refused_with_the_maximum(tiny_modernbert_dir, tiny_model_dir, small_corpus):
    from engine.training.preflight import check_runnable

    with pytest.raises(UserError, match="maximum of 8,?192"):
        check_runnable(tiny_config(tiny_modernbert_dir, corpus=small_corpus, chunk_size=8193))
    with pytest.raises(UserError, match="maximum of 512"):
        check_runnable(tiny_config(tiny_model_dir, corpus=small_corpus, chunk_size=1024))


def test_the_dataset_tab_previews_long_chunks_and_refuses_longer(tiny_modernbert_dir):
    from components.dataset import chunks_only

    shown, html = chunks_only("imdb", "", None, "text", "", "label", tiny_modernbert_dir, 2048, 60)
    assert "Chunks of 2048 tokens" in shown and html
    with pytest.raises(Exception, match="8,?192"):
        chunks_only("imdb", "", None, "text", "", "label", tiny_modernbert_dir, 9000, 60)


# ---------------------------------------------------------------- fill-mask and Compare


def test_fill_mask_agrees_with_the_transformers_pipeline(tiny_modernbert_dir):
    from transformers import pipeline

    from engine.compare.predictions import fill_mask

    loaded = load_mlm(tiny_modernbert_dir)
    ours = fill_mask(loaded.model, loaded.tokenizer, "the film was [MASK] .", top_k=3)
    theirs = pipeline("fill-mask", model=tiny_modernbert_dir, top_k=3)("the film was [MASK] .")
    assert [p.token for p in ours.masks[0]] == [t["token_str"].strip() for t in theirs]
    assert ours.masks[0][0].probability == pytest.approx(theirs[0]["score"], abs=1e-4)


def test_compare_shows_a_modernbert_run_beside_its_base(tiny_modernbert_dir, small_corpus, tmp_path, monkeypatch):
    from engine.compare import side_by_side
    from engine.compare.model_cache import ModelCache
    from tests.run_builders import write_run

    monkeypatch.setenv("MLM_RUNS_DIR", str(tmp_path / "runs"))
    cfg = tiny_config(tiny_modernbert_dir, corpus=small_corpus, **{**IN_PROCESS, "learning_rate": 5e-3})
    train(cfg, tmp_path / "work", log=quiet)
    run_id = "20261205-120000-0123456789abcdef"
    write_run(tmp_path / "runs", run_id, final_from=str(tmp_path / "work" / "final"), model=tiny_modernbert_dir)
    result = side_by_side.compare([side_by_side.BASE, run_id], "the film was [MASK] .", top_k=3,
                                  base_ref=tiny_modernbert_dir, cache=ModelCache(cap=2))
    base, trained = result.columns
    assert len(base.result.masks[0]) == len(trained.result.masks[0]) == 3
    assert base.result.masks[0][0].probability != trained.result.masks[0][0].probability  # its own weights
    assert not any("another vocabulary" in n for n in result.notices)


def test_the_cli_takes_the_families_masking_rate_unless_given(tiny_modernbert_dir, tiny_model_dir):
    from engine.cli.train import build_config, parser

    assert build_config(parser().parse_args(["--model", tiny_modernbert_dir])).mlm_probability == 0.30
    assert build_config(parser().parse_args(["--model", tiny_model_dir])).mlm_probability == 0.15
    given = ["--model", tiny_modernbert_dir, "--mlm-probability", "0.2"]
    assert build_config(parser().parse_args(given)).mlm_probability == 0.2


def test_whole_word_masking_sees_words_through_its_byte_level_offsets(tiny_modernbert_dir):
    from engine.data.tokenize import spaces_in_offsets, word_ids
    from engine.masking import encode_text
    from engine.models import load_tokenizer

    tokenizer = load_tokenizer(tiny_modernbert_dir)
    assert spaces_in_offsets(tokenizer.backend_tokenizer)  # " film": the space is inside the raw span
    row, _ = encode_text("The film was Priyadarshan's best", tokenizer)
    ids = word_ids(np.array(row["offset_mapping"]), np.array(row["special_tokens_mask"]))
    words = ids[ids >= 0]
    assert len(set(words.tolist())) == 5  # The / film / was / Priyadarshan's (several pieces) / best
    assert len(words) > 5


def test_a_continuation_piece_joins_the_word_before(tiny_modernbert_dir):
    from engine.compare.predictions import fill_sequence

    assert fill_sequence("the film[MASK] was long", "[MASK]", 0, "s", glued=True) == "the films was long"
    assert fill_sequence("the film [MASK] long", "[MASK]", 0, "was") == "the film was long"


def test_corpus_offsets_are_trimmed_too_and_whole_word_training_runs(tiny_modernbert_dir, small_corpus, tmp_path):
    from engine.data.tokenize import tokenize_texts
    from engine.models import load_tokenizer

    tokenizer = load_tokenizer(tiny_modernbert_dir)
    split = tokenize_texts(["The film", "  was  long"], tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(split.input_ids.tolist())
    spans = {p: tuple(o) for p, o in zip(pieces, split.offsets.tolist())}
    assert spans["Ġfilm"] == (4, 8)  # not (3, 8): the space is not part of the word
    cfg = tiny_config(tiny_modernbert_dir, corpus=small_corpus, whole_word_mask=True, **IN_PROCESS)
    assert train(cfg, tmp_path, log=quiet)["steps"] == 4


def test_the_chunk_field_names_the_models_longest_chunk(tiny_modernbert_dir, tiny_model_dir):
    from components.common import chunk_hint

    assert "8 to 8,192 tokens" in chunk_hint(tiny_modernbert_dir).info
    assert "8 to 512 tokens" in chunk_hint(tiny_model_dir).info


@pytest.mark.parametrize("method", ["full", "lora"])
def test_a_sentiment_classifier_trains_on_it_and_predicts_what_it_measured(method, tiny_modernbert_dir, tmp_path):
    from engine.data.corpus import CorpusConfig
    from engine.training.classify.config import ClassifyConfig
    from engine.training.classify.infer import classify_texts
    from engine.training.classify.loop import train_classifier

    cfg = ClassifyConfig(model=tiny_modernbert_dir, corpus=CorpusConfig(source="imdb", max_docs=200, seed=0),
                         method=method, train_size=32, test_size=16, max_length=48, batch_size=8)
    summary = train_classifier(cfg, tmp_path, log=lambda line: None)
    assert summary["steps"] == 4 and 0 <= summary["last_eval"]["accuracy"] <= 1
    if method == "lora":  # the adapters plus ModernBERT's pooling head and classifier, trained in full
        adapter = json.loads((tmp_path / "final" / "adapter_config.json").read_text())
        assert adapter["target_modules"] == ["Wqkv"] and set(adapter["modules_to_save"]) >= {"head", "classifier"}
    out = classify_texts(str(tmp_path / "final"), ["a wonderful film", "a dull mess"], max_length=2048)
    assert [r["label"] in ("negative", "positive") for r in out["results"]] == [True, True]
    with pytest.raises(UserError, match="maximum of 8192"):
        classify_texts(str(tmp_path / "final"), ["a wonderful film"], max_length=9000)


def test_the_compare_tab_explains_byte_level_tokens(tiny_modernbert_dir):
    from components.compare import run_fill_mask

    _info, notice, _plot, _table, tokens = run_fill_mask.__wrapped__(tiny_modernbert_dir, "the film was [MASK] .", 3)
    assert any(t.startswith("Ġ") for t in tokens["token"])
    assert "Ġ begins a token that follows a space" in notice
