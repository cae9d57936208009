"""Training throughput: our loop (engine.training.loop.train) against the course's recipe.

The reference is the course's code path: `Trainer` + `DataCollatorForLanguageModeling`
over the same chunks, with the same model, batch size, sequence length and precision
(fp32 on CPU, bf16 on a GPU). Both run a fixed number of optimizer steps after a few
warm-up steps; the time between the first and last measured step gives samples/s.

    python bench/train_throughput.py                       # bundled MiniLM, batch 16, seq 128, CPU
    python bench/train_throughput.py --steps 20 --warmup 3
    python bench/train_throughput.py --arch bert-base --batch-size 64   # on a GPU: also MFU

Each variant runs in a fresh process: our loop as the training worker runs it; the
course's recipe as the course runs it; and on CPU the course's recipe given our malloc
setting too (engine/cpu_allocator.py), the stricter reference, since the Trainer gains
from it as well. --ablations adds our loop without one part at a time: PyTorch's own
dropout (MLM_NATIVE_DROPOUT=1), glibc's default malloc (MLM_DEFAULT_MALLOC=1), and the
whole last layer (engine.mlm_head.install not called).

--compile MODE adds our loop compiled (engine/training/compiled.py: on, or cudagraphs), and
prints how long compiling took. --only picks variants by name (ours, compiled, course).

--arch builds a randomly initialised model of that size (no download needed); speed does
not depend on the weights. On a GPU the script also prints model FLOPs utilisation twice:
the *standard* count (the full model's FLOPs, MLM head on every position: what other
reports and the course's Trainer are measured by) and the count our masked-only head and
last layer actually perform (fewer FLOPs, so a lower share for the same speed).
--json writes every figure to a file.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine.data import corpus as data  # noqa: E402
from engine.models import load_mlm, load_tokenizer  # noqa: E402
from engine.training.batches import take  # noqa: E402
from engine.training.config import TrainConfig  # noqa: E402

ARCHS = {  # sizes of the course's models, built from a config
    "distilbert-base": ("distilbert", dict(dim=768, n_layers=6, n_heads=12, hidden_dim=3072)),
    "bert-base": ("bert", dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)),
}
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10G": 125.0, "T4": 65.0}


def build_sized_model(arch: str, out_dir: str) -> str:
    from transformers import AutoConfig, AutoModelForMaskedLM

    tok = load_tokenizer("bundled")
    model_type, sizes = ARCHS[arch]
    cfg = AutoConfig.for_model(model_type, vocab_size=tok.vocab_size, **sizes)
    AutoModelForMaskedLM.from_config(cfg).save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


def chunks_for(model_ref: str, seq_len: int, n: int, seed: int) -> tuple[data.CorpusConfig, dict]:
    # A slice of IMDb big enough for n chunks, tokenized (and cached) once for both loops.
    corpus = data.CorpusConfig(source="imdb", max_docs=max(200, n * seq_len // 150), seed=seed)
    prepared = data.prepare(corpus, load_tokenizer(model_ref), seq_len, 512)
    train = prepared.chunks["train"]
    if len(train["input_ids"]) < n:
        raise SystemExit(f"only {len(train['input_ids'])} chunks; lower --steps or --batch-size")
    return corpus, take(train, data.downsample(len(train["input_ids"]), n, seed))


def time_ours(model_ref: str, corpus, args) -> tuple[float, float]:
    """(seconds for args.steps optimizer steps after args.warmup, seconds spent compiling),
    through engine.training.loop.train. Rows are logged (and progress stamped) only every
    gcd(warmup, warmup + steps) steps: a log row reads the loss back from the device, which
    a real run does only every few steps (10 by default)."""
    from engine.training.loop import train

    stamps: dict[int, float] = {}
    compile_lines: list[str] = []
    cfg = TrainConfig(
        model=model_ref, corpus=corpus, chunk_size=args.seq_len, train_size=args.n, test_size=8,
        batch_size=args.batch_size, max_steps=args.warmup + args.steps, learning_rate=2e-5,
        eval_every=0, log_every=math.gcd(args.warmup, args.warmup + args.steps), save_every=0,
        precision=args.precision, seed=args.seed,
        compile=args.compile or "off",
    )

    def stamp(step: int) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        stamps[step] = time.perf_counter()

    with tempfile.TemporaryDirectory() as run_dir:
        train(cfg, Path(run_dir), progress=lambda p: p["step"] in (args.warmup, args.warmup + args.steps)
              and stamp(p["step"]), log=lambda line: compile_lines.append(line) if "torch.compile" in line else None)
    compiled = [float(line.rsplit(": ", 1)[1].split()[0]) for line in compile_lines if line.endswith(" s")]
    if args.compile and not compiled:
        raise SystemExit("compile asked for but not used: " + " | ".join(compile_lines))
    return stamps[args.warmup + args.steps] - stamps[args.warmup], sum(compiled)


def time_course(model_ref: str, columns: dict, args) -> float:
    """The same through Trainer + DataCollatorForLanguageModeling, as in the course."""
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback, TrainingArguments

    stamps: dict[int, float] = {}

    class Stamp(TrainerCallback):
        def on_step_end(self, _args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            stamps[state.global_step] = time.perf_counter()

    loaded = load_mlm(model_ref)
    # The course's lm_datasets columns: input_ids, attention_mask, labels (a copy of the ids).
    dataset = data.to_dataset({k: columns[k].astype(np.int64) for k in ("input_ids", "attention_mask", "labels")})
    collator = DataCollatorForLanguageModeling(tokenizer=loaded.tokenizer, mlm_probability=0.15)
    precision = _mixed(args.precision)
    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(
            output_dir=out, per_device_train_batch_size=args.batch_size, max_steps=args.warmup + args.steps,
            learning_rate=2e-5, weight_decay=0.01, logging_steps=10**6, save_strategy="no", eval_strategy="no",
            report_to=[], disable_tqdm=True, seed=args.seed, use_cpu=not torch.cuda.is_available(),
            bf16=precision == "bf16", fp16=precision == "fp16",
        )
        trainer = Trainer(model=loaded.model, args=targs, train_dataset=dataset, data_collator=collator,
                          processing_class=loaded.tokenizer, callbacks=[Stamp()])
        trainer.train()
    return stamps[args.warmup + args.steps] - stamps[args.warmup]


def _mixed(precision: str) -> str:
    from engine.training.loop import mixed_precision

    return mixed_precision(precision, torch.cuda.is_available())


def model_flops_per_sample(model_ref: str, seq_len: int, mlm_probability: float = 0.15,
                           standard: bool = False) -> float:
    """Training FLOPs of one chunk (forward + backward = 3x forward) that our loop runs: the
    encoder's matmuls and attention scores, the last layer past its attention and the MLM
    head at the masked positions only (engine/mlm_head.py).
    standard=True: the usual count instead, the whole model with the head at every position
    (668 MFLOP per token for BERT-base at 128), whatever the loop skips."""
    from engine import mlm_head

    loaded = load_mlm(model_ref)
    inner = loaded.model
    info = loaded.info
    embed = sum(p.numel() for n, p in inner.named_parameters() if "embeddings" in n)
    head = sum(p.numel() for n, p in inner.named_parameters() if n.startswith(("cls.", "vocab_", "lm_head.")))
    encoder = sum(p.numel() for p in inner.parameters()) - embed - head
    last = mlm_head.encoder_layers(inner.base_model)[-1]
    attention_part = "attention.self." if hasattr(last.attention, "self") else "attention."
    post_attention = sum(p.numel() for n, p in last.named_parameters() if not n.startswith(attention_part))
    attention = 2 * 2 * info.layers * seq_len * info.hidden_size  # QK^T and AV, per token
    head_per_masked = 2 * (info.hidden_size * info.hidden_size + info.hidden_size * info.vocab_size)
    skipped = (1 - mlm_probability) * 2 * post_attention
    if standard:
        return 3 * (2 * encoder + attention + head_per_masked) * seq_len
    per_token = 2 * encoder + attention + mlm_probability * head_per_masked - skipped
    return 3 * per_token * seq_len


# Each variant runs in a process of its own: the allocator switch (engine/cpu_allocator.py)
# lasts for a process's life, so a shared process would hand it to whatever ran next.
VARIANTS = {  # name: (loop, environment, child flags); the first and the course's are always run
    "ours": ("ours", {}, []),
    "ours, compiled": ("ours", {}, ["--compile", "MODE"]),  # only with --compile MODE
    "course (Trainer + collator)": ("course", {}, []),
    "course, with our malloc setting": ("course", {}, ["--our-malloc"]),  # CPU only
}
ABLATIONS = {  # --ablations: our loop without one of its parts at a time (CPU only, but the last)
    "ours, PyTorch's own dropout": ("ours", {"MLM_NATIVE_DROPOUT": "1"}, []),
    "ours, glibc's default malloc": ("ours", {"MLM_DEFAULT_MALLOC": "1"}, []),
    "ours, whole last layer": ("ours", {}, ["--full-last-layer"]),
}


def run_variant(args) -> None:
    """The child's side: time one loop and print one RESULT line."""
    import json
    import resource

    if args.our_malloc:
        from engine.training import cpu_allocator

        cpu_allocator.install()
    if args.full_last_layer:
        from engine import mlm_head

        mlm_head.install = lambda base_model: False
    model_ref = args.model_ref
    corpus, columns = chunks_for(model_ref, args.seq_len, args.n, args.seed)
    compile_s = 0.0
    if args.variant == "ours":
        seconds, compile_s = time_ours(model_ref, corpus, args)
    else:
        seconds = time_course(model_ref, columns, args)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    gpu_peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0
    print("RESULT " + json.dumps({"seconds": seconds, "peak_rss_mb": peak_mb, "compile_s": compile_s,
                                  "gpu_peak_bytes": gpu_peak}), flush=True)


def spawn(name: str, loop: str, env: dict, flags: list[str], model_ref: str, args) -> dict:
    import json
    import subprocess

    cmd = [sys.executable, __file__, "--variant", loop, "--model-ref", model_ref, "--batch-size", str(args.batch_size),
           "--seq-len", str(args.seq_len), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--precision", args.precision, "--seed", str(args.seed),
           *[args.compile if f == "MODE" else f for f in flags]]
    child_env = {k: v for k, v in os.environ.items() if k not in ("MLM_NATIVE_DROPOUT", "MLM_DEFAULT_MALLOC")}
    done = subprocess.run(cmd, env={**child_env, **env}, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:  # reported, not fatal: the other variants still count
        print(f"{name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}", flush=True)
        return {"error": done.stderr[-3000:]}
    return json.loads(lines[-1][len("RESULT "):])


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="bundled")
    p.add_argument("--arch", choices=sorted(ARCHS), help="a randomly initialised model of this size instead")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="measured optimizer steps")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--precision", default="auto", help="auto: fp32 on CPU, bf16 on a GPU")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--variant", choices=("ours", "course"), help=argparse.SUPPRESS)  # a child process
    p.add_argument("--model-ref", help=argparse.SUPPRESS)
    p.add_argument("--our-malloc", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--full-last-layer", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--ablations", action="store_true", help="also time our loop without each of its parts")
    p.add_argument("--compile", choices=("on", "cudagraphs"), help="also time our loop compiled this way")
    p.add_argument("--only", default="", help="comma-separated: ours, compiled, course (default: all that apply)")
    p.add_argument("--json", default="", help="write the results here too")
    args = p.parse_args()
    args.n = (args.warmup + args.steps) * args.batch_size
    return args


def pick_variants(args, on_gpu: bool) -> dict:
    variants = {**VARIANTS, **(ABLATIONS if args.ablations else {})}
    if on_gpu:  # the malloc setting and the CPU dropout do nothing there
        variants = {k: v for k, v in variants.items() if "malloc" not in k and "dropout" not in k}
    if not args.compile:
        variants.pop("ours, compiled")
    if args.only:
        wanted = {w.strip() for w in args.only.split(",")}
        tag = {"ours": "ours", "ours, compiled": "compiled", "course (Trainer + collator)": "course"}
        variants = {k: v for k, v in variants.items() if tag.get(k, "ablation") in wanted}
    return variants


def mfu_counts(model_ref: str, args, device: str) -> dict:
    """FLOPs per sample, standard and as performed, and the chip's peak (None off a known GPU)."""
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in device), None)
    return {"standard_flops_per_sample": model_flops_per_sample(model_ref, args.seq_len, standard=True),
            "performed_flops_per_sample": model_flops_per_sample(model_ref, args.seq_len),
            "peak_tflops": peak}


def report(results: dict, counts: dict, args) -> list[dict]:
    samples = args.steps * args.batch_size
    peak = counts["peak_tflops"]
    rows = []
    for name, r in results.items():
        rate = samples / r["seconds"]
        row = {"variant": name, "samples_per_s": rate, "tokens_per_s": rate * args.seq_len, **r}
        line = (f"{name:33s} {rate:7.1f} samples/s {rate * args.seq_len:8.0f} tokens/s"
                f"   peak RSS {r['peak_rss_mb']:6.0f} MiB")
        if peak:
            row["mfu_standard"] = rate * counts["standard_flops_per_sample"] / (peak * 1e12)
            row["mfu_performed"] = rate * counts["performed_flops_per_sample"] / (peak * 1e12)
            # The course's Trainer runs the whole head: its performed count is the standard one.
            if name.startswith("course"):
                row["mfu_performed"] = row["mfu_standard"]
            line += f"   MFU standard {row['mfu_standard']:6.1%}, as performed {row['mfu_performed']:6.1%}"
        if r.get("compile_s"):
            line += f"   (compiled in {r['compile_s']:.0f} s)"
        print(line)
        rows.append(row)
    return rows


def ratios(results: dict) -> dict:
    course = results.get("course (Trainer + collator)", {}).get("seconds")
    out = {}
    for name in ("ours", "ours, compiled", "ours, compiled (no CUDA graphs)"):
        if name in results and course:
            out[f"{name} / course"] = course / results[name]["seconds"]
            print(f"speed-up of {name} against the course's recipe: {out[f'{name} / course']:.2f}x")
    fast = next((results[k] for k in ("ours, compiled", "ours, compiled (no CUDA graphs)") if k in results), None)
    if "ours" in results and fast:
        out["compiled / eager"] = results["ours"]["seconds"] / fast["seconds"]
        print(f"compiled against eager: {out['compiled / eager']:.2f}x")
    if "course, with our malloc setting" in results and "ours" in results:
        fair = results["course, with our malloc setting"]["seconds"] / results["ours"]["seconds"]
        out["ours / course with our malloc"] = fair
        print(f"speed-up against the course's recipe given our malloc setting too: {fair:.2f}x")
    return out


def main() -> None:
    import json

    args = parse_args()
    if args.variant:
        return run_variant(args)
    model_ref = build_sized_model(args.arch, tempfile.mkdtemp()) if args.arch else args.model
    chunks_for(model_ref, args.seq_len, args.n, args.seed)  # tokenize once; the children read the cache

    on_gpu = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if on_gpu else f"CPU ({torch.get_num_threads()} threads)"
    print(f"model {args.arch or args.model}, batch {args.batch_size}, seq {args.seq_len}, "
          f"{args.steps} steps after {args.warmup} warm-up, {device}, precision {_mixed(args.precision)}", flush=True)
    results = {}
    for name, spec in pick_variants(args, on_gpu).items():
        results[name] = spawn(name, *spec, model_ref, args)
        if name == "ours, compiled" and "error" in results[name] and args.compile == "cudagraphs":
            args.compile = "on"  # CUDA graphs failed: still measure the compiled step without them
            results["ours, compiled (no CUDA graphs)"] = spawn(name, *spec, model_ref, args)
    failed = {k: v for k, v in results.items() if "error" in v}
    results = {k: v for k, v in results.items() if "error" not in v}
    counts = mfu_counts(model_ref, args, device)
    print(f"FLOPs per token: standard {counts['standard_flops_per_sample'] / args.seq_len / 1e6:.0f} M, "
          f"as our loop performs them {counts['performed_flops_per_sample'] / args.seq_len / 1e6:.0f} M")
    rows = report(results, counts, args)
    summary = ratios(results)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "model": args.arch or args.model, "batch_size": args.batch_size, "seq_len": args.seq_len,
            "steps": args.steps, "warmup": args.warmup, "device": device, "precision": _mixed(args.precision),
            "torch": torch.__version__, **counts, "rows": rows, "ratios": summary,
            "failed": {k: v["error"][-1500:] for k, v in failed.items()}}, indent=1))


if __name__ == "__main__":
    main()
