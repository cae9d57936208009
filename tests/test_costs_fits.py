"""What fits (engine/costs/fits.py): monotone in batch size, and exactly the estimate's
answer at its boundary."""

from __future__ import annotations

import dataclasses
import json

import pytest

from engine.costs.calculator import CostSettings, estimate
from engine.costs.fits import Sizer, largest, sizers, what_fits
from engine.costs.gpus import PRESETS

T4 = "NVIDIA T4 (16 GB)"


@pytest.fixture(scope="module")
def settings() -> CostSettings:
    return CostSettings(model="bert-base-uncased", precision="bf16", batch_size=64, seq_len=128, gpu=T4).validated()


@pytest.fixture(scope="module")
def made(settings) -> dict[str, Sizer]:
    return sizers(settings)


def test_largest_finds_the_boundary_of_a_monotone_predicate():
    assert largest(lambda n: n <= 37, 1, 1000) == 37
    assert largest(lambda n: n <= 5000, 1, 1000) == 1000
    assert largest(lambda n: False, 1, 1000) == 0


@pytest.mark.parametrize("method", ["full", "lora"])
def test_memory_grows_with_batch_size(made, method):
    totals = [made[method].total(b, 128) for b in (1, 2, 8, 32, 64, 65, 256)]
    assert totals == sorted(totals) and len(set(totals)) == len(totals)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_max_batch_agrees_with_the_estimate_at_its_boundary(settings, made, method):
    best = made[method].max_batch(settings.gpu_preset())
    assert best > 1

    def fits(batch: int) -> bool:
        return estimate(dataclasses.replace(settings, batch_size=batch))[method]["memory"]["fits"]

    assert fits(best) and not fits(best + 1)


def test_max_seq_agrees_with_the_estimate_at_its_boundary(settings, made):
    big = dataclasses.replace(settings, batch_size=256)
    sizer = Sizer(big, "full", made["full"].arch, made["full"].params)
    longest = sizer.max_seq(big.gpu_preset())
    assert 8 < longest < 512

    def fits(seq: int) -> bool:
        return estimate(dataclasses.replace(big, seq_len=seq))["full"]["memory"]["fits"]

    assert fits(longest) and not fits(longest + 1)


def test_more_memory_never_fits_a_smaller_batch(made):
    gpus = sorted(PRESETS.values(), key=lambda g: g.memory_gib)
    for sizer in made.values():
        best = [sizer.max_batch(g) for g in gpus]
        assert best == sorted(best)
    assert made["lora"].max_batch(gpus[0]) > made["full"].max_batch(gpus[0])  # LoRA keeps less


def test_what_fits_has_every_gpu_and_precision(settings):
    result = json.loads(json.dumps(what_fits(settings)))
    assert [r["gpu"] for r in result["by_gpu"]] == list(PRESETS)
    rows = {r["precision"]: r for r in result["by_precision"]}
    assert set(rows) == {"fp32", "fp16", "bf16", "bf16-pure"}
    assert rows["fp32"]["full_total_gib"] > rows["bf16"]["full_total_gib"] > rows["bf16-pure"]["full_total_gib"]
    assert rows["bf16"]["full_max_batch"] == next(r for r in result["by_gpu"] if r["gpu"] == T4)["full_max_batch"]


def test_the_costs_tab_finds_what_fits_for_the_estimate_on_screen(settings):
    from components.cost_fits import find

    shown = estimate(dataclasses.replace(settings, gpu_memory_gib=20))
    by_gpu, note, by_precision = find(shown)
    assert list(by_gpu["GPU"]) == list(PRESETS)
    assert "(20 GiB)" in note and len(by_precision) == 4
    edited = dataclasses.replace(settings, gpu_memory_gib=20)
    expected = Sizer(edited, "full").max_batch(edited.gpu_preset())
    assert by_precision.loc[by_precision["precision"] == "bf16 mixed", "full: largest batch"].item() == f"{expected:,}"


def test_the_costs_tab_asks_for_an_estimate_first():
    import gradio as gr

    from components.cost_fits import find

    with pytest.raises(gr.Error, match="Press Estimate first"):
        find(None)
