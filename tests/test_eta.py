"""engine.runs.eta: the duration estimate before Start, from earlier runs or the cost model."""

from __future__ import annotations

import json

import pytest

from engine.runs import eta
from engine.training.config import TrainConfig


def finished(root, rid: str, tokens_per_s: float, device="cpu", **config):
    folder = root / rid
    folder.mkdir(parents=True)
    cfg = {"model": "bundled", "method": "full", "batch_size": 16, "chunk_size": 128, **config}
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "summary.json").write_text(json.dumps({"tokens_per_s": tokens_per_s, "device": device,
                                                     "stopped": False}))


def test_earlier_runs_with_the_same_settings_are_the_basis(tmp_path):
    finished(tmp_path, "20260101-000000-00000000000000a1", 1000.0)
    finished(tmp_path, "20260101-000001-00000000000000a2", 3000.0)
    finished(tmp_path, "20260101-000002-00000000000000a3", 9999.0, device="cuda")  # another device: ignored
    cfg = TrainConfig(max_steps=50, batch_size=16, chunk_size=128, eval_every=0, test_size=0)
    e = eta.estimate(cfg, "cpu", tmp_path)
    assert (e.steps, e.tokens, e.basis) == (50, 50 * 16 * 128, "same settings")
    assert e.tokens_per_s == 2000.0  # the median of the two CPU runs
    assert e.overhead_s == eta.DEFAULT_OVERHEAD_S["cpu"]  # these runs recorded no start and finish times
    assert e.seconds == pytest.approx(50 * 16 * 128 / 2000.0 + e.overhead_s)


def test_start_up_time_is_measured_by_earlier_runs(tmp_path):
    finished(tmp_path, "20260101-000000-00000000000000c1", 1000.0)
    folder = tmp_path / "20260101-000000-00000000000000c1"
    (folder / "summary.json").write_text(json.dumps({"tokens_per_s": 1000.0, "device": "cpu", "stopped": False,
                                                     "train_seconds": 20.0}))
    (folder / "status.json").write_text(json.dumps({"state": "completed", "started_at": 100.0,
                                                    "finished_at": 126.5}))
    e = eta.estimate(TrainConfig(max_steps=10, eval_every=0, test_size=0), "cpu", tmp_path)
    assert e.overhead_s == pytest.approx(6.5)
    assert "6.5 s of it start-up" in eta.describe(e)


def test_other_settings_on_this_machine_scale_by_flops(tmp_path):
    finished(tmp_path, "20260101-000000-00000000000000b1", 2000.0, batch_size=16, chunk_size=128)
    full = eta.estimate(TrainConfig(max_steps=10, batch_size=8, chunk_size=64), "cpu", tmp_path)
    assert full.basis == "this machine, scaled by FLOPs"
    lora = eta.estimate(TrainConfig(max_steps=10, batch_size=8, chunk_size=64, method="lora"), "cpu", tmp_path)
    assert lora.tokens_per_s > full.tokens_per_s  # LoRA skips most weight gradients: fewer FLOPs per token


def test_no_earlier_run_falls_back_to_the_cost_model_and_says_so(tmp_path):
    e = eta.estimate(TrainConfig(max_steps=100), "cpu", tmp_path)
    assert e.basis == "cost model" and e.seconds > 0
    assert "no earlier run" in eta.describe(e)
    gpu = eta.estimate(TrainConfig(max_steps=100), "cuda", tmp_path)
    assert gpu.basis == "cost model" and gpu.seconds < e.seconds


def test_evaluations_add_time(tmp_path):
    quiet = eta.estimate(TrainConfig(max_steps=100, eval_every=0, test_size=200), "cpu", tmp_path)
    busy = eta.estimate(TrainConfig(max_steps=100, eval_every=10, test_size=200), "cpu", tmp_path)
    assert busy.seconds > quiet.seconds and busy.tokens == quiet.tokens


def test_steps_follow_size_epochs_and_accumulation(tmp_path):
    e = eta.estimate(TrainConfig(max_steps=0, train_size=160, batch_size=16, grad_accum_steps=2, epochs=3),
                     "cpu", tmp_path)
    assert e.steps == 15  # 10 batches -> 5 optimizer steps per epoch, 3 epochs
    unknown = eta.estimate(TrainConfig(max_steps=0, train_size=0), "cpu", tmp_path)
    assert unknown.steps is None and "unknown" in eta.describe(unknown)
    known = eta.estimate(TrainConfig(max_steps=0, train_size=0, batch_size=16, epochs=1), "cpu", tmp_path,
                         train_chunks=320)
    assert known.steps == 20


def test_an_unknown_model_gives_steps_but_no_duration(tmp_path):
    e = eta.estimate(TrainConfig(max_steps=10, model="no/such-model"), "cpu", tmp_path)
    assert e.steps == 10 and e.seconds is None and "unknown" in eta.describe(e)


def test_a_chunk_past_the_models_maximum_is_the_reason_given(tmp_path, tiny_modernbert_dir):
    """Not 'the cost model does not know this model': the model is known, the chunk is too long."""
    e = eta.estimate(TrainConfig(max_steps=10, model=tiny_modernbert_dir, chunk_size=9000), "cpu", tmp_path)
    assert e.seconds is None and "9000 is above" in e.explanation and "maximum of 8192" in e.explanation
    known = eta.estimate(TrainConfig(max_steps=10, model=tiny_modernbert_dir, chunk_size=256), "cpu", tmp_path)
    assert known.seconds is not None
