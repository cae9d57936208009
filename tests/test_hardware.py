"""engine.hardware: the mode detected from the (Space) environment and the limits it puts on runs."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from engine import hardware
from engine.errors import UserError
from engine.training.config import TrainConfig

SPACE = {"SPACE_ID": "alice/mlm-studio"}


def no_cuda() -> bool:
    return False


def cuda() -> bool:
    return True


def must_not_touch_cuda() -> bool:
    raise AssertionError("CUDA must not be queried on ZeroGPU before `spaces` is imported")


def detect(env, cuda_available=no_cuda, runs_root=Path("runs")):
    return hardware.detect(env=env, cuda_available=cuda_available, runs_root=runs_root)


def test_local_cpu_has_no_limits():
    mode = detect({})
    assert (mode.kind, mode.on_space, mode.training_allowed) == ("local-cpu", False, True)
    assert not mode.limits.active and mode.limits.time_limit_s is None
    assert mode.duplicate_url is None and mode.persistent


def test_local_gpu():
    mode = detect({}, cuda_available=cuda)
    assert mode.kind == "local-gpu" and mode.on_gpu and mode.training_allowed and not mode.limits.active


def test_local_limits_only_from_set_variables():
    mode = detect({"MLM_CPU_MAX_STEPS": "50"})
    assert mode.kind == "local-cpu"
    assert mode.limits == hardware.TrainingLimits(max_steps=50)


def test_space_cpu_gets_default_limits():
    mode = detect(SPACE)
    assert (mode.kind, mode.on_space, mode.training_allowed) == ("space-cpu", True, True)
    assert mode.limits == hardware.TrainingLimits(max_train_chunks=2000, max_test_chunks=500, max_steps=300,
                                                  max_minutes=20.0)
    assert mode.limits.time_limit_s == 1200
    assert "2,000 training chunks" in mode.reason and "300 optimizer steps" in mode.reason
    banner = hardware.banner_markdown(mode)
    assert "Space on CPU hardware" in banner and "MLM_CPU_MAX_STEPS" not in banner  # visitors cannot set them
    assert "MLM_CPU_MAX_STEPS" in hardware.banner_markdown(detect({"MLM_CPU_MAX_STEPS": "50"}))  # the operator can


def test_space_cpu_limits_from_variables():
    env = {**SPACE, "MLM_CPU_MAX_STEPS": "1000", "MLM_CPU_MAX_MINUTES": "0", "MLM_CPU_MAX_TRAIN_CHUNKS": "none",
           "MLM_CPU_MAX_TEST_CHUNKS": "lots"}
    mode = detect(env)
    assert mode.limits.max_steps == 1000
    assert mode.limits.max_minutes is None and mode.limits.max_train_chunks is None  # 0 / none: no limit
    assert mode.limits.max_test_chunks == 500  # a typo keeps the default and says so
    assert mode.warnings and "MLM_CPU_MAX_TEST_CHUNKS='lots'" in mode.warnings[0]
    assert "Warning: MLM_CPU_MAX_TEST_CHUNKS" in hardware.banner_markdown(mode)


def test_space_gpu_has_no_limits():
    mode = detect({**SPACE, "ACCELERATOR": "t4-small", "MLM_CPU_MAX_STEPS": "5"}, cuda_available=cuda)
    assert mode.kind == "space-gpu" and mode.training_allowed and not mode.limits.active


def test_gpu_hardware_without_cuda_trains_on_cpu_and_says_why():
    mode = detect({**SPACE, "ACCELERATOR": "t4-small"})
    assert mode.kind == "space-cpu" and mode.limits.active
    assert "ACCELERATOR=t4-small" in mode.reason and "no CUDA" in mode.reason


@pytest.mark.parametrize("env", [{"SPACES_ZERO_GPU": "true"}, {"SPACES_ZERO_GPU": "1"}, {"ACCELERATOR": "zero-a10g"}])
def test_zerogpu_disables_training_with_duplicate_link(env):
    mode = detect({**SPACE, **env}, cuda_available=must_not_touch_cuda)
    assert (mode.kind, mode.training_allowed) == ("zerogpu", False)
    assert "@spaces.GPU" in mode.reason and "Duplicate" in mode.reason
    assert mode.duplicate_url == "https://huggingface.co/spaces/alice/mlm-studio?duplicate=true"
    assert f"({mode.duplicate_url})" in hardware.banner_markdown(mode)
    with pytest.raises(UserError, match=r"ZeroGPU.*\?duplicate=true"):
        hardware.apply_limits(TrainConfig(), mode)


def test_persistent_storage_only_under_data():
    assert hardware.persistent_storage(on_space=False, runs_root=Path("/tmp/anything"))
    assert hardware.persistent_storage(on_space=True, runs_root=Path("/data/runs"))
    assert not hardware.persistent_storage(on_space=True, runs_root=Path("/home/user/app/runs"))
    kept = detect(SPACE, runs_root=Path("/data/runs"))
    lost = detect(SPACE, runs_root=Path("/home/user/app/runs"))
    assert "survive a restart" in hardware.storage_message(kept) and kept.persistent
    assert "wiped" in hardware.storage_message(lost) and "/data" in hardware.banner_markdown(lost)


def test_apply_limits_clamps_and_explains():
    cfg = TrainConfig(train_size=10_000, test_size=1_000, batch_size=16, epochs=3.0)
    new, notices = hardware.apply_limits(cfg, detect(SPACE))
    assert (new.train_size, new.test_size, new.max_steps) == (2000, 500, 300)  # 2000/16 * 3 = 375 steps > 300
    assert (cfg.train_size, cfg.test_size, cfg.max_steps) == (10_000, 1_000, 0)  # the input is left alone
    text = " ".join(notices)
    assert len(notices) == 4
    assert "asked for 10,000; a smaller corpus uses all of its chunks" in text and "MLM_CPU_MAX_TRAIN_CHUNKS" in text
    assert "asks for 375" in text and "MLM_CPU_MAX_STEPS" in text
    assert "20 minutes" in text and "resuming continues from the last checkpoint" in text


def test_apply_limits_keeps_small_runs():
    cfg = TrainConfig(train_size=100, test_size=50, batch_size=16, epochs=1.0)
    new, notices = hardware.apply_limits(cfg, detect(SPACE))
    assert new == cfg
    assert len(notices) == 1 and "minutes" in notices[0]  # only the time limit applies


def test_apply_limits_all_chunks_and_explicit_steps():
    mode = detect(SPACE)
    new, notices = hardware.apply_limits(TrainConfig(train_size=0, max_steps=5000), mode)
    assert new.train_size == 2000 and new.max_steps == 300
    assert "asked for all" in notices[0] and "asks for 5,000" in notices[2]
    new, _ = hardware.apply_limits(TrainConfig(train_size=0, max_steps=200), mode)
    assert new.max_steps == 200  # under the cap: untouched


def test_apply_limits_no_limits_is_identity():
    cfg = TrainConfig()
    assert hardware.apply_limits(cfg, detect({})) == (cfg, [])
    assert hardware.apply_limits(cfg, detect(SPACE, cuda_available=cuda)) == (cfg, [])


def test_planned_steps_counts_accumulation_and_epochs():
    cfg = TrainConfig(train_size=1000, batch_size=10, grad_accum_steps=4, epochs=2.0)
    assert hardware.planned_steps(cfg) == 50  # 100 batches / 4 = 25 per epoch
    assert hardware.planned_steps(replace(cfg, train_size=0)) is None
    assert hardware.planned_steps(replace(cfg, max_steps=7)) == 7


def test_deadline_follows_the_time_limit():
    assert hardware.deadline(detect({})) is None
    mode = detect(SPACE)
    assert hardware.deadline(mode)() is False
    assert hardware.deadline(mode, started_at=time.monotonic() - 1201)() is True


def test_detect_reads_the_real_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SPACE_ID", "bob/studio")
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    mode = hardware.detect(runs_root=tmp_path)
    assert mode.kind == "zerogpu" and mode.space_id == "bob/studio"
    monkeypatch.delenv("SPACE_ID")
    monkeypatch.delenv("SPACES_ZERO_GPU")
    monkeypatch.delenv("ACCELERATOR", raising=False)
    assert hardware.detect(cuda_available=no_cuda).kind == "local-cpu"
