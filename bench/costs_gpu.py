"""Predicted versus measured peak GPU memory for the Costs tab (needs a CUDA GPU).

For DistilBERT- and BERT-base-shaped models (random weights, from the bundled configs),
batch 32 and 64, sequence 128, fp16 mixed precision, full fine-tuning and LoRA, this
runs a few real training steps the way engine/training.py does (autocast + GradScaler,
the MLM head on masked rows via engine.mlm_head, fused AdamW, gradient clipping,
zero_grad(set_to_none=True)) and compares torch.cuda.max_memory_allocated over the
steady-state steps with the estimate's `peak_allocated`. It also compares the bytes
autograd saves for backward on the GPU (saved_tensors_hooks) with the replay's
CUDA rules, and reports the tokens/s reached and the utilisation it implies.

    python bench/costs_gpu.py                       # the issue's grid, markdown table
    python bench/costs_gpu.py --out results.json    # also write every row as JSON
    python bench/costs_gpu.py --models bert-base-uncased --batches 32 --heads masked,all

The issue's bar: predicted peak within 15% of measured. Paste the table into docs/costs.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GIB = 1024**3


def run_case(model_name: str, method: str, batch: int, seq: int, head: str, precision: str, steps: int,
             device: str = "cuda") -> dict:
    import dataclasses

    import torch
    from transformers import AutoModelForMaskedLM

    from engine.costs.activations import trace_step
    from engine.costs.arch import default_targets, load_arch
    from engine.costs.calculator import CostSettings, estimate
    from engine.costs.gpus import PRESETS
    from engine.costs.measure import autocast_context, make_batch, saved_bytes, step_loss
    from engine.costs.params import count_params

    arch = load_arch(model_name)
    settings = CostSettings(model=model_name, method=method, batch_size=batch, seq_len=seq, precision=precision,
                            head=head, lora_r=8, lora_alpha=16, lora_dropout=0.05, device=device)
    predicted = estimate(settings)[method]
    cuda = device == "cuda"

    torch.manual_seed(0)
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = AutoModelForMaskedLM.from_config(arch.config()).to(device)
    if precision == "bf16-pure":
        model.to(torch.bfloat16)
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05,
                                                 target_modules=default_targets(arch)))
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.01, fused=True)  # as engine/optim.py
    scaler = torch.amp.GradScaler(device, enabled=precision == "fp16")
    batches = [make_batch(batch, seq, arch.vocab, settings.mlm_probability, seed=i, device=device)
               for i in range(steps)]

    # What autograd keeps, on the GPU, against the replay's CUDA rules.
    spec = settings.lora_spec()
    measured_saved = saved_bytes(model, batches[0], head == "all", precision, device=device)
    model.zero_grad(set_to_none=True)
    shape = dataclasses.replace(settings.step_shape(), head_rows=measured_saved.masked_rows)
    predicted_saved = trace_step(arch, count_params(arch, method, spec), shape,
                                 spec.dropout if method == "lora" else 0.0).bytes()

    started = None
    for i, b in enumerate(batches):
        with autocast_context(precision, device):
            loss = step_loss(model, b, head == "all")
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        if i == 0:  # step 1 creates the optimizer state; measure the steady state after it
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    measured_peak = torch.cuda.max_memory_allocated() if cuda else 0
    tokens_per_s = (steps - 1) * batch * seq / seconds
    gpu_name = torch.cuda.get_device_name() if cuda else "cpu"
    preset = matching_preset(gpu_name, PRESETS)
    row = {
        "model": model_name, "method": method, "batch": batch, "seq": seq, "head": head, "precision": precision,
        "predicted_peak": predicted["memory"]["peak_allocated"], "measured_peak": measured_peak,
        "peak_ratio": predicted["memory"]["peak_allocated"] / measured_peak if measured_peak else float("nan"),
        "predicted_moment": predicted["memory"]["moment"],
        "predicted_saved": predicted_saved, "measured_saved": measured_saved.saved_bytes,
        "saved_ratio": predicted_saved / measured_saved.saved_bytes,
        "tokens_per_s": tokens_per_s, "gpu": gpu_name,
        "implied_utilisation": (tokens_per_s * predicted["flops"]["per_token"] / preset.peak_flops(precision)
                                if preset else None),
    }
    del model, optimizer, batches
    if cuda:
        torch.cuda.empty_cache()
    return row


def matching_preset(gpu_name: str, presets: dict):
    """The preset whose chip name (H100, A100, L40S, L4, ...) appears in the device's name."""
    chips = sorted(((name.split()[1], p) for name, p in presets.items()), key=lambda c: -len(c[0]))
    return next((p for chip, p in chips if chip in gpu_name), None)


def table(rows: list[dict]) -> str:
    head = ("| model | method | head | batch | predicted peak | measured peak (max_memory_allocated) | ratio "
            "| within 15% | saved for backward: predicted / measured | tokens/s | implied utilisation |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        util = f"{r['implied_utilisation']:.0%}" if r["implied_utilisation"] is not None else "?"
        within = "n/a" if not r["measured_peak"] else "yes" if abs(r["peak_ratio"] - 1) <= 0.15 else "NO"
        lines.append(
            f"| {r['model']} | {r['method']} | {r['head']} | {r['batch']} | {r['predicted_peak'] / GIB:.3f} GiB | "
            f"{r['measured_peak'] / GIB:.3f} GiB | {r['peak_ratio']:.3f} | {within} | "
            f"{r['predicted_saved'] / GIB:.3f} / {r['measured_saved'] / GIB:.3f} GiB ({r['saved_ratio']:.3f}) | "
            f"{r['tokens_per_s']:,.0f} | {util} |"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="distilbert-base-uncased,bert-base-uncased")
    p.add_argument("--methods", default="full,lora")
    p.add_argument("--batches", default="32,64")
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--heads", default="masked", help="masked (our trainer), all, or both: masked,all")
    p.add_argument("--precision", default="fp16", choices=("fp32", "fp16", "bf16", "bf16-pure"))
    p.add_argument("--steps", type=int, default=4, help="training steps per case (the first is not measured)")
    p.add_argument("--out", default="", help="write the rows as JSON here too")
    p.add_argument("--cpu-smoke", action="store_true",
                   help="no GPU: run the script's code path on the CPU (saved bytes only; no peak to compare)")
    args = p.parse_args()

    import torch

    device = "cpu" if args.cpu_smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("No CUDA GPU: this check needs one (or --cpu-smoke to exercise the script on the CPU).")
        return 2
    warnings.filterwarnings("ignore")
    print(f"{torch.cuda.get_device_name() if device == 'cuda' else 'CPU smoke run'}, torch {torch.__version__}\n")
    rows = []
    for model_name in args.models.split(","):
        for method in args.methods.split(","):
            for head in args.heads.split(","):
                for batch in (int(b) for b in args.batches.split(",")):
                    rows.append(run_case(model_name, method, batch, args.seq, head, args.precision, args.steps,
                                         device))
                    print(table(rows[-1:]).splitlines()[-1], flush=True)
    print("\n" + table(rows))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
