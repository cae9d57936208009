"""The Classify tab's pieces without a browser: figures, the form's config, the check-and-count
text, the inference table and the payoff text; and the Train tab's charts on a classifier run."""

from __future__ import annotations

import pytest

from components.classify import check_and_count, config_from, corpus_of
from components.classify_extras import inference_table, payoff_markdown
from components.classify_plots import confusion_figure, eval_figure, summary_markdown, train_figure
from components.run_plots import figures
from engine.compare.payoff import payoff_from_runs
from engine.errors import UserError
from tests.conftest import SMALL_CORPUS

ROWS = [
    {"kind": "train", "step": 2, "epoch": 0.5, "loss": 0.7, "accuracy": 0.5, "lr": 1e-4, "samples_per_s": 9.0},
    {"kind": "eval", "step": 2, "accuracy": 0.6, "precision": 0.5, "recall": 0.7, "f1": 0.58,
     "confusion": [[3, 2], [1, 4]], "labels": ["negative", "positive"]},
]


def test_figures_draw_loss_accuracy_metrics_and_the_confusion_heatmap():
    train = train_figure(ROWS)
    assert [t.name for t in train.data] == ["loss", "train accuracy"]
    assert {t.name for t in eval_figure(ROWS).data} == {"accuracy", "precision", "recall", "f1"}
    heat = confusion_figure(ROWS).data[0]
    assert heat.type == "heatmap" and [list(r) for r in heat.z] == [[3, 2], [1, 4]]
    assert list(heat.x) == ["negative", "positive"]
    assert not train_figure([]).data and not confusion_figure(ROWS[:1]).data  # waiting, no crash


def test_the_train_tabs_charts_open_a_classifier_run_without_perplexity():
    loss, ppl, _, _ = figures(ROWS)
    assert loss.data and not ppl.data and "Classify tab" in ppl.layout.annotations[0].text


def test_summary_shows_best_and_last_evaluation_and_the_trainable_note():
    summary = {"best_eval": ROWS[1], "last_eval": {**ROWS[1], "step": 4}, "trainable_params": 1234,
               "total_params": 99999, "method": "lora", "trainable_note": "why it differs from 294,912"}
    text = summary_markdown(summary)
    assert "best (step 2)" in text and "last (step 4)" in text and "1,234" in text and "294,912" in text


def test_form_values_become_a_config_with_a_stored_or_bundled_corpus():
    assert corpus_of("imdb").source == "imdb" and corpus_of("0123456789abcdef").source == "stored"
    cfg = config_from({"model": "bundled", "corpus": "rotten_tomatoes", "method": "lora", "learning_rate": 0})
    assert cfg.corpus.source == "rotten_tomatoes" and cfg.learning_rate == 3e-3
    with pytest.raises(UserError, match="does not exist on this server"):
        config_from({"model": "20260101-120000-00000000000000ff", "corpus": "imdb"})


def test_check_and_count_gives_the_exact_lora_count_and_why(tiny_model_dir):
    from engine.data.corpus import CorpusConfig
    from engine.training.classify.config import ClassifyConfig

    cfg = ClassifyConfig(model=tiny_model_dir, corpus=CorpusConfig(**SMALL_CORPUS), method="lora", train_size=32,
                         test_size=16, max_length=32).validated()
    text = check_and_count(cfg)
    # hidden 32, 2 layers, r 8: 2 layers x (query, value) x 8 x (32 + 32) = 2,048 adapter weights
    assert "2,048 adapter weights" in text and "294,912" in text and "negative, positive" in text


def test_inference_table_has_one_column_per_classifier_and_the_throughput():
    results = [{"label": "positive", "confidence": 0.9}, {"label": "negative", "confidence": 0.8}]
    out = {"texts": ["good", "bad"],
           "models": [{"model": "run-a", "results": results, "samples_per_s": 123.4, "seconds": 0.0162}]}
    frame, speed = inference_table(out)
    assert list(frame.columns) == ["text", "run-a"] and frame["run-a"][0] == "positive (0.90)"
    assert "123.4 samples/s" in speed


def test_payoff_text_has_means_the_interval_and_the_verdict():
    results = [({"model": m, "method": "full", "seed": s}, {"last_eval": {"accuracy": a}})
               for m, s, a in [("base", 1, 0.70), ("base", 2, 0.72), ("base", 3, 0.71),
                               ("adapted", 1, 0.80), ("adapted", 2, 0.81), ("adapted", 3, 0.82)]]
    report = {"experiment_id": "x", "done": 6, "total": 6, "start_model": "base", "mlm_run": "r", "seeds": 3,
              "full_vs_lora": False, "comparisons": {"accuracy": payoff_from_runs(results, "base", "adapted")}}
    text = payoff_markdown(report)
    assert "6 of 6 runs finished" in text and "start 71.0 ± 1.0, adapted 81.0 ± 1.0" in text
    assert "95% interval" in text and "adaptation helped" in text
