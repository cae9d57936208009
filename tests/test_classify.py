"""engine.training.classify: classifier runs (full and LoRA) from tiny MLMs, metrics, bad input, inference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.data.corpus import CorpusConfig
from engine.errors import UserError
from engine.training.classify.config import DEFAULT_LR, ClassifyConfig
from engine.training.classify.data import label_vocabulary, labelled_splits
from engine.training.classify.infer import MAX_TEXTS, TEXTBOOK_SENTENCES, classify_texts, preflight
from engine.training.classify.loop import train_classifier
from engine.training.classify.metrics import classification_metrics
from engine.training.classify.model import build_classifier

IMDB = CorpusConfig(source="imdb", max_docs=200, seed=0)


def tiny_cfg(model: str, **changes) -> ClassifyConfig:
    settings = dict(model=model, corpus=IMDB, train_size=48, test_size=16, max_length=48, batch_size=8,
                    log_every=2, eval_every=3)
    return ClassifyConfig(**{**settings, **changes})


def rows_of(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module", params=["full", "lora"])
def finished(request, tiny_model_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp(f"classify-{request.param}")
    cfg = tiny_cfg(tiny_model_dir, method=request.param)
    return cfg, run_dir, train_classifier(cfg, run_dir, log=lambda line: None)


def test_a_run_writes_train_and_eval_rows_final_and_summary(finished):
    cfg, run_dir, summary = finished
    rows = rows_of(run_dir)
    train = [r for r in rows if r["kind"] == "train"]
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [r["step"] for r in train] == [2, 4, 6] and [r["step"] for r in evals] == [3, 6]  # 48 / 8 = 6 steps
    assert {"loss", "accuracy", "lr", "samples_per_s"} <= set(train[0]) and 0 <= train[0]["accuracy"] <= 1
    assert {"accuracy", "precision", "recall", "f1", "confusion", "labels"} <= set(evals[0])
    assert evals[-1]["labels"] == ["negative", "positive"] and np.sum(evals[-1]["confusion"]) == 16
    assert summary == json.loads((run_dir / "summary.json").read_text())
    assert summary["last_eval"] == evals[-1] and summary["best_eval"] in evals
    assert summary["steps"] == summary["total_steps"] == 6 and not summary["stopped"]
    assert summary["learning_rate"] == DEFAULT_LR[cfg.method]
    final = run_dir / "final"
    assert json.loads((final / "classifier.json").read_text())["labels"] == ["negative", "positive"]
    assert (final / "tokenizer.json").exists()
    if cfg.method == "lora":
        assert (final / "adapter_config.json").exists() and "294,912" in summary["trainable_note"]
        assert summary["trainable_params"] < summary["total_params"] / 10
    else:
        assert (final / "config.json").exists() and summary["trainable_params"] == summary["total_params"]


def test_the_saved_classifier_predicts_what_the_run_measured(finished):
    cfg, run_dir, summary = finished
    splits = labelled_splits(cfg)
    out = classify_texts(str(run_dir / "final"), splits.test_texts, max_length=cfg.max_length)
    predicted = [splits.labels.index(r["label"]) for r in out["results"]]
    assert classification_metrics(splits.test_labels, predicted, splits.labels) == {
        k: v for k, v in summary["last_eval"].items() if k not in ("kind", "step", "epoch", "elapsed_s")}


def test_should_stop_ends_the_run_with_an_evaluation_and_no_model(tiny_model_dir, tmp_path):
    summary = train_classifier(tiny_cfg(tiny_model_dir), tmp_path, should_stop=lambda: True, log=lambda line: None)
    assert summary["stopped"] and summary["steps"] == 1 and not (tmp_path / "final").exists()
    assert rows_of(tmp_path)[-1]["kind"] == "eval"


def test_three_string_classes_get_sorted_ids_and_a_3x3_confusion(tiny_distilbert_dir, tmp_path):
    topics = ["sport", "cinema", "weather"]
    lines = ["text,topic"] + [f"\"about {topics[i % 3]} number {i}\",{topics[i % 3]}" for i in range(90)]
    (tmp_path / "topics.csv").write_text("\n".join(lines))
    corpus = CorpusConfig(source="upload", upload_path=str(tmp_path / "topics.csv"), label_column="topic",
                          test_fraction=0.3, seed=0)
    cfg = ClassifyConfig(model=tiny_distilbert_dir, corpus=corpus, train_size=0, test_size=0, max_length=16,
                         method="lora", batch_size=16, log_every=1)
    summary = train_classifier(cfg, tmp_path / "run", log=lambda line: None)
    last = summary["last_eval"]
    assert last["labels"] == ["cinema", "sport", "weather"] and last["average"] == "macro"
    assert np.asarray(last["confusion"]).shape == (3, 3) and np.sum(last["confusion"]) == 27


def test_metrics_match_hand_counts_for_three_classes():
    m = classification_metrics([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], ["a", "b", "c"])
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6, abs=1e-6)
    assert m["precision"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3, abs=1e-6)  # macro: per class, then mean
    assert m["recall"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3, abs=1e-6)


def test_binary_metrics_equal_sklearns_on_the_same_predictions():
    from sklearn.metrics import f1_score, precision_score, recall_score

    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    m = classification_metrics(y, p, ["neg", "pos"])
    assert m["average"] == "binary" and m["precision"] == pytest.approx(precision_score(y, p), abs=1e-6)
    assert m["recall"] == pytest.approx(recall_score(y, p), abs=1e-6)
    assert m["f1"] == pytest.approx(f1_score(y, p), abs=1e-6)


def test_a_lora_mlm_run_is_merged_into_the_classifier(tiny_model_dir, tmp_path):
    import torch

    from engine.models import load_mlm
    from engine.training.config import TrainConfig
    from engine.training.lora import wrap_lora

    peft_model = wrap_lora(load_mlm(tiny_model_dir).model, TrainConfig(method="lora"), "bert", tiny_model_dir)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_()  # a trained adapter: B is no longer zero, so merging changes the weights
    peft_model.save_pretrained(tmp_path / "adapter")
    merged = load_mlm(str(tmp_path / "adapter")).model.merge_and_unload()
    classifier, _, _ = build_classifier(str(tmp_path / "adapter"), ["no", "yes"], seed=0)
    plain, _, _ = build_classifier(tiny_model_dir, ["no", "yes"], seed=0)
    query = "encoder.layer.0.attention.self.query.weight"
    assert torch.equal(classifier.base_model.state_dict()[query], merged.base_model.state_dict()[query])
    assert not torch.equal(classifier.base_model.state_dict()[query], plain.base_model.state_dict()[query])
    assert torch.equal(classifier.classifier.weight, plain.classifier.weight)  # same seed, same head


@pytest.mark.parametrize("values, message", [
    ([0.2, 0.7, 1.0], "decimal numbers"),
    ([1, 1, 1], "one class only"),
    ([0, None, 1], "1 of 3 rows have an empty label"),
    (["pos", "nan", "neg"], "empty label"),
    ([0.0, float("nan"), 1.0], "empty label"),
    (list(range(101)), "101 different values"),
])
def test_bad_labels_are_refused_with_a_reason(values, message):
    with pytest.raises(UserError, match=message):
        label_vocabulary(values)


def test_labels_map_to_ids_in_sorted_order():
    assert label_vocabulary(["pos", "neg", "neutral", "pos"]) == (
        ["neg", "neutral", "pos"], {"neg": 0, "neutral": 1, "pos": 2})
    assert label_vocabulary([10, 2, 2.0]) == (["2", "10"], {10: 1, 2: 0})  # numerically, 2.0 counts as 2
    assert label_vocabulary([1, 0], bundled=True)[0] == ["negative", "positive"]


def test_a_corpus_without_labels_is_refused(tiny_model_dir, tmp_path):
    (tmp_path / "notes.csv").write_text("text\n" + "\n".join(f"note number {i}" for i in range(20)))
    corpus = CorpusConfig(source="upload", upload_path=str(tmp_path / "notes.csv"), seed=0)
    with pytest.raises(UserError, match="no label column"):
        preflight(tiny_cfg(tiny_model_dir, corpus=corpus))


@pytest.mark.parametrize("changes, message", [
    ({"max_length": 0}, "Max length must be at least 8 tokens, got 0"),
    ({"max_length": 1000}, "above the model's maximum of 512 tokens"),
    ({"method": "prefix"}, "Method must be one of"),
    ({"batch_size": "sixteen"}, "Batch size must be a number"),
])
def test_bad_settings_are_refused_before_training(tiny_model_dir, tmp_path, changes, message):
    cfg = tiny_cfg(tiny_model_dir, **changes)
    with pytest.raises(UserError, match=message):
        preflight(cfg)
    with pytest.raises(UserError, match=message):
        train_classifier(tiny_cfg(tiny_model_dir, **changes), tmp_path, log=lambda line: None)
    assert not (tmp_path / "final").exists()


def test_config_round_trips_and_fills_the_methods_rate():
    cfg = ClassifyConfig(method="lora", corpus=CorpusConfig(source="stored", corpus_id="imdb"))
    raw = cfg.to_dict()
    assert raw["kind"] == "classify" and raw["learning_rate"] == 0.0
    again = ClassifyConfig.from_dict(json.loads(json.dumps(raw)))
    assert again.learning_rate == DEFAULT_LR["lora"] and again.corpus == cfg.corpus
    with pytest.raises(UserError, match="Unknown classifier setting"):
        ClassifyConfig.from_dict({"chunk_size": 128})
    with pytest.raises(UserError, match="not a classifier"):
        ClassifyConfig.from_dict({"kind": "mlm"})


def test_inference_gives_a_label_and_confidence_per_text(finished):
    _, run_dir, _ = finished
    out = classify_texts(str(run_dir / "final"), TEXTBOOK_SENTENCES)
    assert [r["text"] for r in out["results"]] == TEXTBOOK_SENTENCES and out["samples_per_s"] > 0
    assert all(r["label"] in ("negative", "positive") and 0.5 <= r["confidence"] <= 1 for r in out["results"])


def test_inference_refuses_too_many_texts_and_models_that_are_no_classifier(finished, tiny_model_dir):
    _, run_dir, _ = finished
    with pytest.raises(UserError, match=f"more than {MAX_TEXTS:,}"):
        classify_texts(str(run_dir / "final"), ["fine"] * (MAX_TEXTS + 1))
    with pytest.raises(UserError, match="No text"):
        classify_texts(str(run_dir / "final"), [])
    with pytest.raises(UserError, match="not a text classifier"):
        classify_texts(tiny_model_dir, ["fine"])
