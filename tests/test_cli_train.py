"""`python -m engine train`: a run folder from the terminal, flags over a config file, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli.train import build_config, parser

ROOT = Path(__file__).resolve().parent.parent
TINY_RUN = ["--dataset", "imdb", "--max-docs", "200", "--chunk-size", "64", "--train-size", "16",
            "--test-size", "8", "--batch-size", "4", "--log-every", "1"]


def test_cli_writes_a_run_folder(tiny_model_dir, tmp_path):
    env = dict(os.environ, MLM_RUNS_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "engine", "train", "--model", tiny_model_dir, "--max-steps", "3", *TINY_RUN],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = tmp_path.iterdir()
    assert f"run {run_dir.name}" in done.stdout and str(run_dir) in done.stdout
    config = json.loads((run_dir / "config.json").read_text())
    assert config["run_id"] == run_dir.name and config["max_steps"] == 3 and config["model"] == tiny_model_dir
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "completed" and status["step"] == status["total_steps"] == 3
    assert any("eval at step 3" in line for line in status["log_tail"])
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2, 3, 3]  # eval before, three train rows, eval after
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 3 and '"eval_perplexity_after"' in done.stdout
    assert (run_dir / "final" / "model.safetensors").exists() and (run_dir / "eval_set.npz").exists()

    again = subprocess.run(
        [sys.executable, "-m", "engine", "train", "--resume", run_dir.name],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert again.returncode == 2 and "already completed" in again.stderr


def test_two_processes_share_one_run(tiny_model_dir, tmp_path):
    """What `accelerate launch` does on several GPUs, here with two CPU processes (gloo)."""
    env = dict(os.environ, MLM_RUNS_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "engine", "train",
         "--model", tiny_model_dir, "--max-steps", "4", "--save-every", "2", *TINY_RUN],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = tmp_path.iterdir()  # one run id, broadcast from the main process
    assert "2 process(es)" in done.stdout and "2 steps per epoch" in done.stdout  # 16 chunks / 2 / batch 4
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2, 3, 4, 4]  # written once, by the main process only
    assert (run_dir / "checkpoints" / "step-2" / "state.pt").exists() and (run_dir / "final").is_dir()


def test_flags_override_the_config_file(tmp_path):
    path = tmp_path / "cfg.json"
    settings = {"method": "lora", "batch_size": 8, "lora_r": 4, "corpus": {"source": "rotten_tomatoes"}}
    path.write_text(json.dumps(settings))
    cfg = build_config(parser().parse_args(["--config", str(path), "--lora-r", "16", "--whole-word"]))
    assert (cfg.method, cfg.batch_size, cfg.lora_r, cfg.whole_word_mask) == ("lora", 8, 16, True)
    assert cfg.learning_rate == 2e-4  # the course's LoRA rate when none is given
    assert cfg.corpus.source == "rotten_tomatoes"
    cfg = build_config(parser().parse_args(["--config", str(path), "--lr", "1e-3", "--dataset", "imdb"]))
    assert cfg.learning_rate == 1e-3 and cfg.corpus.source == "imdb"


@pytest.mark.parametrize("argv, message", [
    (["--lr", "0"], "Learning rate must be above 0"),
    (["--batch-size", "0"], "Batch size must be at least 1"),
    (["--method", "lora", "--lora-r", "0"], "LoRA rank r must be at least 1"),
    (["--config", "/no/such/file.json"], "Cannot read the config file"),
    (["--resume", "20990101-000000-0000000000000000"], "No run"),
    (["--resume", "../etc"], "is not a run id"),
])
def test_bad_input_is_one_clear_line(argv, message, capsys, tmp_path, monkeypatch):
    from engine.__main__ import main

    monkeypatch.setenv("MLM_RUNS_DIR", str(tmp_path))
    assert main(["train", *argv]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no run folder for input that never trained


def test_corpus_id_flag_trains_on_a_stored_corpus(tmp_path, monkeypatch):
    from engine.data import store
    from engine.errors import UserError

    monkeypatch.setenv("MLM_CORPORA_DIR", str(tmp_path / "corpora"))
    notes = tmp_path / "notes.csv"
    notes.write_text("note\n" + "\n".join(f"Patient {i} has atrial fibrillation on apixaban." for i in range(30)))
    meta = store.store_upload(str(notes), "note", "")
    cfg = build_config(parser().parse_args(["--corpus-id", meta.corpus_id, "--name", "af notes\x07 v1"]))
    assert (cfg.corpus.source, cfg.corpus.corpus_id, cfg.name) == ("stored", meta.corpus_id, "af notes v1")
    with pytest.raises(UserError, match="is not a corpus id"):
        build_config(parser().parse_args(["--corpus-id", "../../etc"]))
