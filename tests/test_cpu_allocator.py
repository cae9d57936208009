"""engine/cpu_allocator.py: big tensors reuse their pages instead of faulting fresh ones in."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from engine.training import cpu_allocator
from tests.conftest import tiny_config

ROOT = Path(__file__).resolve().parent.parent

# After a warm-up, allocate, fill and free a 64 MiB tensor 20 times; report the page faults that took.
PROBE = """
import json, resource, sys
sys.path.insert(0, {root!r})
import torch
from engine.training import cpu_allocator
took = cpu_allocator.install() if sys.argv[1] == "install" else False
for _ in range(10):  # warm up: the heap settles in the first few rounds (a step or two of training)
    t = torch.ones(16 * 2**20)
    del t
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    t = torch.ones(16 * 2**20)
    del t
print(json.dumps({{"took": took, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}}))
"""


def probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE.format(root=str(ROOT)), mode],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_installed_process_reuses_pages_of_freed_tensors():
    default, tuned = probe("default"), probe("install")
    assert tuned["took"] is True and default["took"] is False
    pages = 20 * 64 * 2**20 // 4096  # what 20 fresh 64 MiB blocks fault in
    assert default["faults"] > 0.5 * pages  # the default maps and unmaps every time
    assert tuned["faults"] < 0.2 * default["faults"], (tuned, default)


def test_env_var_turns_it_off(monkeypatch):
    monkeypatch.delenv("MLM_DEFAULT_MALLOC", raising=False)
    assert cpu_allocator.wanted()
    for value in ("1", "true", "YES"):
        monkeypatch.setenv("MLM_DEFAULT_MALLOC", value)
        assert not cpu_allocator.wanted()


@pytest.mark.parametrize("env, calls", [(None, 1), ("1", 0)])
def test_cpu_training_installs_it_unless_told_not_to(env, calls, tiny_model_dir, small_corpus, tmp_path, monkeypatch):
    from engine.training.loop import train

    seen = []
    monkeypatch.setattr(cpu_allocator, "install", lambda: seen.append(1) or True)
    if env is None:
        monkeypatch.delenv("MLM_DEFAULT_MALLOC", raising=False)
    else:
        monkeypatch.setenv("MLM_DEFAULT_MALLOC", env)
    cfg = tiny_config(tiny_model_dir, corpus=small_corpus, chunk_size=64, train_size=8, test_size=4, batch_size=4,
                      max_steps=1, seed=3)
    train(cfg, tmp_path / "run", log=lambda line: None)
    assert len(seen) == calls
