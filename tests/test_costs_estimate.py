"""The whole estimate: structure, what moves it, bad input, the CLI and calibration by a run."""

from __future__ import annotations

import json
import time

import pytest

from engine.costs.calculator import CostSettings, estimate
from engine.costs.flops import DEFAULT_UTILISATION
from engine.costs.gpus import PRESETS
from engine.errors import UserError
from tests.conftest import write_run


@pytest.fixture(scope="module")
def base() -> dict:
    return estimate(CostSettings(model="bert-base-uncased", lora_r=8, lora_targets=["query", "value"],
                                 batch_size=32, seq_len=128, precision="fp16", corpus_tokens="1,280,000"))


def test_estimate_has_both_sides_and_is_json(base):
    assert json.loads(json.dumps(base))["selected"] == "lora"
    for side in ("full", "lora"):
        parts = base[side]["memory"]["parts"]
        assert set(parts) == {"weights", "gradients", "optimizer", "activations", "logits", "margin", "overhead"}
        assert sum(parts.values()) == base[side]["memory"]["total"]
        assert base[side]["memory"]["total"] - parts["overhead"] == base[side]["memory"]["peak_allocated"]
    assert base["model"]["max_length"] == 512 and base["model"]["vocab"] == 30522


def test_exact_parts(base):
    full, lora = base["full"], base["lora"]
    assert full["memory"]["weights"] == 109_514_298 * 4
    assert full["memory"]["gradients"] == 109_514_298 * 4
    assert lora["memory"]["gradients"] == 294_912 * 4
    assert lora["memory"]["optimizer"] == 2 * 294_912 * 4  # AdamW's two fp32 states
    assert lora["checkpoint"]["model_or_adapter"] == 294_912 * 4
    assert full["checkpoint"]["model_or_adapter"] == 109_514_298 * 4


def test_lora_is_cheaper_than_full(base):
    full, lora = base["full"], base["lora"]
    assert lora["memory"]["peak_allocated"] < full["memory"]["peak_allocated"]
    ratio = lora["flops"]["per_token"] / full["flops"]["per_token"]
    assert 0.6 < ratio < 0.75  # no weight gradients for frozen layers: about 4N of 6N
    assert lora["time"]["seconds_per_epoch"] < full["time"]["seconds_per_epoch"]
    assert abs(full["flops"]["per_token"] / full["flops"]["six_n_per_token"] - 1) < 0.1


def test_time_and_money_follow_from_flops(base):
    full, gpu = base["full"], PRESETS[base["gpu"]["name"]]
    seconds = full["flops"]["per_epoch"] / (gpu.tflops_16bit * 1e12 * DEFAULT_UTILISATION)
    assert full["time"]["seconds_per_epoch"] == pytest.approx(seconds)
    assert full["time"]["cost_per_epoch"] == pytest.approx(seconds / 3600 * gpu.price_per_hour)
    assert full["time"]["total_cost"] == pytest.approx(3 * full["time"]["cost_per_epoch"])
    assert full["flops"]["steps_per_epoch"] == 313  # 1,280,000 / 4,096 rounded up
    assert full["flops"]["per_epoch"] == pytest.approx(full["flops"]["per_token"] * 1_280_000)


def test_head_on_every_position_costs_logits(base):
    every = estimate(CostSettings(model="bert-base-uncased", batch_size=32, seq_len=128, head="all"))
    for side in ("full", "lora"):
        assert every[side]["memory"]["parts"]["logits"] > 5 * base[side]["memory"]["parts"]["logits"]
        assert every[side]["flops"]["head_share"] > 3 * base[side]["flops"]["head_share"]


def test_checkpointing_trades_memory_for_flops(base):
    ckpt = estimate(CostSettings(model="bert-base-uncased", batch_size=32, seq_len=128, grad_checkpointing=True))
    for side in ("full", "lora"):
        assert ckpt[side]["memory"]["saved_for_backward"] < base[side]["memory"]["saved_for_backward"] / 3
        assert ckpt[side]["flops"]["per_token"] > base[side]["flops"]["per_token"]


def test_peak_moment_moves_late_for_tiny_batches():
    """With almost no activations the peak comes once (nearly) every gradient exists."""
    small = estimate(CostSettings(model="bert-base-uncased", batch_size=1, seq_len=16))
    memory = small["full"]["memory"]
    assert memory["moment"] not in ("end of forward", "loss backward")
    assert memory["parts"]["gradients"] > 0.9 * memory["gradients"]
    big = estimate(CostSettings(model="bert-base-uncased", batch_size=64, seq_len=128))
    assert big["full"]["memory"]["moment"] == "loss backward" and big["full"]["memory"]["parts"]["gradients"] == 0
    accum = estimate(CostSettings(model="bert-base-uncased", batch_size=32, seq_len=128, grad_accum_steps=4))
    assert accum["full"]["memory"]["parts"]["gradients"] == 109_514_298 * 4


def test_fits_follows_the_gpu_memory():
    tight = estimate(CostSettings(model="bert-base-uncased", batch_size=64, seq_len=512, gpu_memory_gib="4"))
    assert not tight["full"]["memory"]["fits"] and tight["gpu"]["memory_gib"] == 4.0


def test_editable_gpu_fields_accept_commas_and_dollars():
    e = estimate(CostSettings(gpu="NVIDIA T4 (16 GB)", gpu_price_per_hour="$1,000", corpus_tokens=1000))
    assert e["gpu"]["price_per_hour"] == 1000.0


def test_pure_bf16_halves_weights():
    e = estimate(CostSettings(model="distilbert-base-uncased", precision="bf16-pure"))
    assert e["full"]["memory"]["weights"] == 66_985_530 * 2


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("changes,message", [
    ({"lora_r": 0}, "LoRA rank r must be at least 1, got 0"),
    ({"lora_r": 4096}, "r=4096 is above the width of query"),
    ({"lora_targets": "query,q_lin"}, "has no linear layer named 'q_lin'"),
    ({"batch_size": 0}, "Batch size must be at least 1, got 0"),
    ({"seq_len": 1024}, "Sequence length 1024 is above bert-base-uncased's maximum of 512 tokens"),
    ({"model": "someone/no-such-model"}, "not available offline"),
    ({"gpu_price_per_hour": "cheap"}, "GPU price per hour must be a number, got 'cheap'"),
    ({"batch_size": "many"}, "Batch size must be a number, got 'many'"),
    ({"mlm_probability": 1.5}, "Masking probability must be between 0 and 1"),
    ({"utilisation": 2}, "Utilisation must be a share"),
    ({"gpu": "TPU v9"}, "Unknown GPU preset 'TPU v9'"),
])
def test_bad_input_gets_a_clear_message(changes, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        estimate(CostSettings(**{"model": "bert-base-uncased", **changes}))


def test_roberta_maximum_is_512():
    with pytest.raises(UserError, match="maximum of 512"):
        estimate(CostSettings(model="roberta-base", seq_len=514))


# ---------------------------------------------------------------- CLI


def test_cli_prints_the_whole_estimate_as_json(capsys):
    from engine.__main__ import main

    code = main(["estimate", "--model", "bert-base-uncased", "--method", "lora", "--r", "8", "--targets",
                 "query,value", "--batch", "32", "--seq", "128", "--precision", "fp16", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["lora"]["params"]["trainable"] == 294_912
    assert out["settings"]["precision"] == "fp16" and out["full"]["memory"]["peak_allocated"] > 0


def test_cli_table_and_errors(capsys):
    from engine.__main__ import main

    assert main(["estimate", "--model", "distilbert-base-uncased", "--corpus-tokens", "1000000"]) == 0
    table = capsys.readouterr().out
    assert "trainable parameters" in table and "cost per epoch" in table and "r(d+k)/(d·k)" in table
    assert main(["estimate", "--batch", "0"]) == 2
    assert "Batch size must be at least 1" in capsys.readouterr().err


# ---------------------------------------------------------------- calibration by a finished run


def write_lora_run(root, run_id: str, device_line: str, tokens_per_s: float = 50_000.0, summary: bool = True):
    """A finished (or, without summary, running) LoRA run whose log names its device."""
    from engine.training.config import TrainConfig

    cfg = TrainConfig(model="bundled", method="lora", batch_size=16, chunk_size=128, precision="auto").to_dict()
    status = {"state": "completed" if summary else "running", "log_tail": [
        f"lora fine-tuning of bundled (bert): 0 of 0 parameters trainable; {device_line}"]}
    measured = {"steps": 100, "epochs": 1.0, "train_seconds": 40.96, "tokens_per_s": tokens_per_s,
                "samples_per_s": tokens_per_s / 128, "peak_memory_bytes": 900_000_000, "trainable_params": 0,
                "total_params": 0, "method": "lora", "model_type": "bert"}
    return write_run(root, run_id, {**cfg, "run_id": run_id, "created_at": time.time()}, status,
                     measured if summary else None)


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("MLM_RUNS_DIR", str(tmp_path))
    write_lora_run(tmp_path, "20260101-000000-00000000000000aa", "device cuda:0, mixed precision bf16")
    write_lora_run(tmp_path, "20260101-000000-00000000000000bb", "device cpu, mixed precision no", 900.0)
    write_lora_run(tmp_path, "20260101-000000-00000000000000cc", "device cuda:0, mixed precision bf16",
                   summary=False)
    return tmp_path


def test_finished_runs_are_listed(runs):
    from engine.costs.calibrate import finished_runs

    ids = [run_id for _, run_id in finished_runs()]
    assert ids == ["20260101-000000-00000000000000bb", "20260101-000000-00000000000000aa"]


def test_gpu_run_calibrates_time(runs):
    run_id = "20260101-000000-00000000000000aa"
    same = CostSettings(model="bundled", batch_size=16, seq_len=128, precision="bf16", corpus_tokens=1_000_000,
                        calibration_run=run_id)
    e = estimate(same)
    c = e["calibration"]
    assert c["settings"]["precision"] == "bf16" and c["settings"]["method"] == "lora"
    assert c["measured_peak_memory_bytes"] == 900_000_000
    assert c["predicted_peak_memory_bytes"] == e["lora"]["memory"]["peak_allocated"]
    assert c["utilisation_applies"] and run_id in e["lora"]["time"]["utilisation_source"]
    # The run's own settings, priced with its own utilisation, give back its measured speed.
    assert e["lora"]["time"]["tokens_per_s"] == pytest.approx(50_000.0)
    assert e["full"]["time"]["utilisation"] == pytest.approx(c["implied_utilisation"])


def test_cpu_run_is_shown_but_not_applied(runs):
    e = estimate(CostSettings(model="bundled", corpus_tokens=1000, calibration_run="20260101-000000-00000000000000bb"))
    assert not e["calibration"]["utilisation_applies"] and "CPU" in e["calibration"]["note"]
    assert e["lora"]["time"]["utilisation"] == DEFAULT_UTILISATION


def test_unfinished_or_missing_runs_are_refused(runs):
    with pytest.raises(UserError, match="has not finished"):
        estimate(CostSettings(model="bundled", calibration_run="20260101-000000-00000000000000cc"))
    with pytest.raises(UserError, match="No run"):
        estimate(CostSettings(model="bundled", calibration_run="20260101-000000-00000000000000dd"))
    with pytest.raises(UserError, match="not a run id"):
        estimate(CostSettings(model="bundled", calibration_run="../etc"))


def test_bundled_corpus_tokens():
    from engine.costs.calculator import bundled_corpus_tokens

    counted = bundled_corpus_tokens("rotten_tomatoes", 64)
    assert counted["tokens"] == counted["chunks"] * 64 > 0
    with pytest.raises(UserError, match="Unknown bundled corpus"):
        bundled_corpus_tokens("wikipedia", 64)
