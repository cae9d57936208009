"""`python -m engine classify`: flags derived from the dataclasses, a run folder, bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from engine.cli.classify import build_config, corpus_flag, parser
from engine.data.corpus import CorpusConfig
from engine.training.classify.config import ClassifyConfig

ROOT = Path(__file__).resolve().parent.parent


def test_every_config_field_is_a_flag():
    dests = {a.dest for a in parser()._actions}
    assert {f.name for f in dataclasses.fields(ClassifyConfig) if f.name != "corpus"} <= dests
    assert {corpus_flag(f.name) for f in dataclasses.fields(CorpusConfig)} <= dests
    assert "corpus_id" in dests and "corpus_label_column" in dests


def test_flags_and_a_config_file_make_one_config(tmp_path):
    (tmp_path / "cfg.json").write_text(json.dumps({"kind": "classify", "epochs": 2, "corpus": {"max_docs": 300}}))
    args = parser().parse_args(["--config", str(tmp_path / "cfg.json"), "--method", "lora", "--lora-targets",
                                "query,key", "--corpus-source", "rotten_tomatoes", "--max-length", "64"])
    cfg = build_config(args)
    assert (cfg.method, cfg.lora_targets, cfg.max_length, cfg.epochs) == ("lora", ["query", "key"], 64, 2.0)
    assert cfg.corpus.source == "rotten_tomatoes" and cfg.corpus.max_docs == 300 and cfg.learning_rate == 3e-3


def test_cli_writes_a_classifier_run_folder(tiny_model_dir, tmp_path):
    env = dict(os.environ, MLM_RUNS_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "engine", "classify", "--model", tiny_model_dir, "--corpus-max-docs", "200",
         "--corpus-seed", "0", "--train-size", "32", "--test-size", "16", "--max-length", "32", "--batch-size", "8",
         "--log-every", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = tmp_path.iterdir()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["kind"] == "classify" and config["run_id"] == run_dir.name and config["train_size"] == 32
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "completed" and status["step"] == status["total_steps"] == 4
    assert status["message"].startswith("Completed 4 steps")
    kinds = [json.loads(line)["kind"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert kinds == ["train"] * 4 + ["eval"]
    assert (run_dir / "final" / "classifier.json").exists() and (run_dir / "summary.json").exists()


def test_cli_bad_input_is_one_clear_line(tmp_path):
    env = dict(os.environ, MLM_RUNS_DIR=str(tmp_path))
    for flag, message in (("0", "Max length must be at least 8 tokens, got 0."),
                          ("1000", "Max length 1000 is above the model's maximum of 512 tokens")):
        done = subprocess.run([sys.executable, "-m", "engine", "classify", "--max-length", flag],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and f"error: {message}" in done.stderr
    assert list(tmp_path.iterdir()) == []  # refused before a run folder was made
