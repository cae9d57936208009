"""Benchmark: one fill-mask request, ours against transformers' pipeline; and a four-model comparison.

    python bench/fill_mask.py [--repeats 60] [--compare-repeats 10] [--threads N]

In one process, on the bundled all-MiniLM-L6-v2 (CPU):
  (a) latency of one request, one sentence with one mask, top-5: `engine.compare.predictions.fill_mask`
      against `transformers.pipeline("fill-mask")` holding the same model and tokenizer.
      The two are timed alternately, request by request, so a busy neighbour slows both
      alike. Prints p50, p95 and the ratio ours/pipeline (goal: <= 1.0).
  (b) `engine.compare.side_by_side.compare` of one sentence across four models of the bundled size:
      the base, a fully fine-tuned copy (the bundled weights with another head) and two
      LoRA adapters on the shared base, saved as finished run folders in a temp dir.
      Prints the first (cold: loading included) and the warm p50/p95 (goal: warm < 1 s).
Timings are wall-clock on a shared machine: read the ratio, not the absolute milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from engine.compare.predictions import fill_mask  # noqa: E402
from engine.models import load_mlm  # noqa: E402
from engine.run_folder import RunFolder  # noqa: E402

SENTENCE = "This is a great [MASK]."


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def time_once(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def single_request(repeats: int) -> dict:
    from transformers import pipeline

    loaded = load_mlm("bundled")
    pipe = pipeline("fill-mask", model=loaded.model, tokenizer=loaded.tokenizer, device="cpu")
    ours_fn = lambda: fill_mask(loaded.model, loaded.tokenizer, SENTENCE, top_k=5)  # noqa: E731
    pipe_fn = lambda: pipe(SENTENCE, top_k=5)  # noqa: E731
    assert [p.token_id for p in ours_fn().masks[0]] == [r["token"] for r in pipe_fn()], "different answers"
    for _ in range(5):  # warm-up: first calls allocate
        ours_fn(), pipe_fn()
    ours, ref = [], []
    for i in range(repeats):
        pair = (ours_fn, pipe_fn) if i % 2 == 0 else (pipe_fn, ours_fn)
        a, b = time_once(pair[0]), time_once(pair[1])
        ours.append(a if i % 2 == 0 else b)
        ref.append(b if i % 2 == 0 else a)
    return {
        "ours_p50_ms": 1e3 * statistics.median(ours), "ours_p95_ms": 1e3 * pct(ours, 0.95),
        "pipeline_p50_ms": 1e3 * statistics.median(ref), "pipeline_p95_ms": 1e3 * pct(ref, 0.95),
        "ratio_p50": statistics.median(ours) / statistics.median(ref),
        "ratio_p95": pct(ours, 0.95) / pct(ref, 0.95),
    }


def _write_run(root: Path, run_id: str, final_dir: Path, method: str) -> None:
    folder = RunFolder.create(root, run_id, {"model": "bundled", "method": method}, time.time())
    folder.update_status(state="completed")
    final_dir.rename(folder.final_dir)


def build_runs(root: Path) -> list[str]:
    """A full-model run (bundled encoder, another random head) and two random LoRA adapters."""
    from peft import LoraConfig, get_peft_model

    loaded = load_mlm("bundled")
    torch.manual_seed(1)
    loaded.model.cls.predictions.transform.dense.reset_parameters()
    loaded.model.save_pretrained(root / "full")
    loaded.tokenizer.save_pretrained(root / "full")
    _write_run(root, "20260101-000000-00000000000000f1", root / "full", "full")
    ids = ["20260101-000000-00000000000000f1"]
    for seed in (2, 3):
        torch.manual_seed(seed)
        base = load_mlm("bundled").model
        peft_model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"],
                                                     init_lora_weights=False))
        peft_model.peft_config["default"].base_model_name_or_path = "bundled"
        out = root / f"lora{seed}"
        peft_model.save_pretrained(out)
        loaded.tokenizer.save_pretrained(out)
        run_id = f"20260101-000000-00000000000000a{seed}"
        _write_run(root, run_id, out, "lora")
        ids.append(run_id)
    return ids


def four_models(repeats: int) -> dict:
    from engine.compare import side_by_side as compare
    from engine.compare.model_cache import ModelCache

    root = Path(tempfile.mkdtemp(prefix="bench-fill-mask-"))
    os.environ["MLM_RUNS_DIR"] = str(root)
    names = [compare.BASE, *build_runs(root)]
    cache = ModelCache(cap=4)
    run = lambda: compare.compare(names, SENTENCE, top_k=5, base_ref="bundled", cache=cache)  # noqa: E731
    cold = time_once(run)
    warm = [time_once(run) for _ in range(repeats)]
    rows = cache.memory_rows()
    return {"models": len(names), "cold_s": cold, "warm_p50_s": statistics.median(warm),
            "warm_p95_s": pct(warm, 0.95), "memory": {r["model"]: r["memory"] for r in rows}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--compare-repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    single = single_request(args.repeats)
    print(f"one request ({SENTENCE!r}, top-5), {args.repeats} alternating repeats:")
    print(f"  ours      p50 {single['ours_p50_ms']:7.2f} ms   p95 {single['ours_p95_ms']:7.2f} ms")
    print(f"  pipeline  p50 {single['pipeline_p50_ms']:7.2f} ms   p95 {single['pipeline_p95_ms']:7.2f} ms")
    verdict = "met" if single["ratio_p50"] <= 1.0 else "NOT met"
    print(f"  ratio ours/pipeline: p50 {single['ratio_p50']:.2f}, p95 {single['ratio_p95']:.2f} "
          f"(goal <= 1.0: {verdict})")
    four = four_models(args.compare_repeats)
    verdict = "met" if four["warm_p50_s"] < 1.0 else "NOT met"
    print(f"four-model comparison (base + full + 2 LoRA on one shared base), {args.compare_repeats} repeats:")
    print(f"  cold (loading included) {four['cold_s']:.2f} s; warm p50 {1e3 * four['warm_p50_s']:.1f} ms, "
          f"p95 {1e3 * four['warm_p95_s']:.1f} ms (goal < 1 s: {verdict})")
    print("  memory: " + ", ".join(f"{k}: {v}" for k, v in four["memory"].items()))
    print(json.dumps({"single": single, "four_models": four}))


if __name__ == "__main__":
    main()
