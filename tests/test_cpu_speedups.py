"""engine/training/cpu_speedups.py: the training speed-ups installed by one call, nothing at import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from torch import nn

from engine import mlm_head as masked_last_layer
from engine.mlm_head import unwrap
from engine.models import load_mlm
from engine.training import cpu_allocator, cpu_dropout, cpu_speedups

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import sys
sys.path.insert(0, {root!r})
from transformers import AttentionInterface
import engine.training.loop  # everything the training worker imports
from engine.training import cpu_dropout
print(cpu_dropout.ATTENTION in AttentionInterface._global_mapping)
"""


def test_importing_registers_nothing():
    done = subprocess.run([sys.executable, "-c", PROBE.format(root=str(ROOT))], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip().splitlines()[-1] == "False"


@pytest.fixture
def no_malloc_switch(monkeypatch):
    calls = []
    monkeypatch.setattr(cpu_allocator, "install", lambda: calls.append(1) or True)
    monkeypatch.delenv("MLM_DEFAULT_MALLOC", raising=False)
    monkeypatch.delenv("MLM_NATIVE_DROPOUT", raising=False)
    return calls


def test_on_cpu_all_three_are_installed_and_dropout_comes_back(tiny_model_dir, no_malloc_switch):
    from transformers import AttentionInterface

    model = load_mlm(tiny_model_dir).model
    handle = cpu_speedups.install(model, "cpu")
    assert handle.last_layer and masked_last_layer.installed(unwrap(model).base_model)
    assert any(isinstance(m, cpu_dropout.CpuDropout) for m in model.modules())
    assert cpu_dropout.ATTENTION in AttentionInterface._global_mapping
    assert handle.allocator and no_malloc_switch == [1]
    handle.uninstall()
    assert not any(isinstance(m, cpu_dropout.CpuDropout) for m in model.modules())
    assert model.config._attn_implementation == "sdpa"


def test_on_a_gpu_only_the_last_layer(tiny_model_dir, no_malloc_switch):
    model = load_mlm(tiny_model_dir).model
    handle = cpu_speedups.install(model, "meta")  # any device that is not the CPU
    assert handle.last_layer and handle.dropout is None and handle.allocator is False
    assert no_malloc_switch == [] and not any(type(m) is not nn.Dropout and isinstance(m, nn.Dropout)
                                              for m in model.modules())


def test_env_flags_turn_the_cpu_parts_off(tiny_model_dir, no_malloc_switch, monkeypatch):
    monkeypatch.setenv("MLM_NATIVE_DROPOUT", "1")
    monkeypatch.setenv("MLM_DEFAULT_MALLOC", "1")
    handle = cpu_speedups.install(load_mlm(tiny_model_dir).model, "cpu")
    assert handle.last_layer and handle.dropout is None and handle.allocator is False
    assert no_malloc_switch == []
