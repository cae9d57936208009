r"""`python -m engine estimate`: LoRA versus full fine-tuning costs, as a table or JSON.

Example (the textbook's setting):
  python -m engine estimate --model bert-base-uncased --method lora --r 8 \
      --targets query,value --batch 32 --seq 128 --precision fp16 --json
"""

from __future__ import annotations

import argparse
import json

from engine.costs.arch import ARCH_CHOICES
from engine.costs.gpus import DEFAULT_GPU, PRESETS
from engine.costs.memory import OPTIMIZERS, PARTS
from engine.costs.trace import PRECISIONS
from engine.errors import UserError
from engine.numbers import gib, mib


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine estimate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="bert-base-uncased",
                   help=f"{', '.join(ARCH_CHOICES)}, a model folder, or a Hub id (online; config only)")
    p.add_argument("--task", choices=("mlm", "classify"), default="mlm",
                   help="mlm (domain adaptation) or classify (sequence classification: pooler + classifier, "
                        "LoRA with the head trained in full)")
    p.add_argument("--num-labels", default="2", help="labels of the classifier (--task classify)")
    p.add_argument("--method", choices=("full", "lora"), default="lora", help="the side listed first")
    p.add_argument("--r", type=str, default="8", help="LoRA rank")
    p.add_argument("--alpha", type=str, default="16")
    p.add_argument("--dropout", type=str, default="0.05", help="LoRA dropout")
    p.add_argument("--targets", default="", help="comma-separated module names, or all-linear (default: the model's)")
    p.add_argument("--modules-to-save", default="", help="modules trained in full next to LoRA, comma-separated")
    p.add_argument("--batch", type=str, default="32")
    p.add_argument("--seq", type=str, default="128", help="sequence (chunk) length in tokens")
    p.add_argument("--precision", choices=PRECISIONS, default="fp16",
                   help="fp32, fp16/bf16 mixed precision (autocast), or bf16-pure (weights in bf16)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw")
    p.add_argument("--grad-checkpointing", action="store_true")
    p.add_argument("--head", choices=("masked", "all"), default="masked",
                   help="MLM head on masked positions only (this app's trainer) or on every position")
    p.add_argument("--mlm-probability", type=str, default=None,
                   help="share of positions masked (default: the model family's, 0.15; ModernBERT 0.30)")
    p.add_argument("--gpu", choices=list(PRESETS), default=DEFAULT_GPU, metavar="GPU",
                   help=f"one of: {'; '.join(PRESETS)}")
    p.add_argument("--gpu-memory", default=None, help="GiB, overrides the preset")
    p.add_argument("--tflops", default=None, help="dense 16-bit TFLOPS, overrides the preset")
    p.add_argument("--tflops-fp32", default=None)
    p.add_argument("--price", default=None, help="US dollars per hour, overrides the preset")
    p.add_argument("--corpus-tokens", default="0", help="training tokens per epoch (0: no time or money)")
    p.add_argument("--epochs", default="3")
    p.add_argument("--utilisation", default=None, help="share of peak FLOP/s reached (default 0.35)")
    p.add_argument("--run", default="", help="a finished run id to calibrate against")
    p.add_argument("--json", action="store_true", help="print the whole estimate as JSON")
    return p


def _family_rate(model: str) -> float:
    """The model family's masking rate (engine.architectures), read from the cost model's configs."""
    from engine.architectures import BERT_MASK_RATE, masking_default
    from engine.costs.arch import load_arch

    try:
        return masking_default(load_arch(model).model_type)[0]
    except UserError:  # the estimate itself says what is wrong with the model
        return BERT_MASK_RATE


def main(argv: list[str]) -> int:
    from engine.costs.calculator import CostSettings, estimate

    a = parser().parse_args(argv)
    if a.mlm_probability is None:
        a.mlm_probability = _family_rate(a.model)
    settings = CostSettings(
        model=a.model, task=a.task, num_labels=a.num_labels, method=a.method, lora_r=a.r, lora_alpha=a.alpha,
        lora_dropout=a.dropout,
        lora_targets=a.targets, modules_to_save=a.modules_to_save, batch_size=a.batch, seq_len=a.seq,
        precision=a.precision, optimizer=a.optimizer, grad_checkpointing=a.grad_checkpointing, head=a.head,
        mlm_probability=a.mlm_probability, gpu=a.gpu, gpu_memory_gib=a.gpu_memory, gpu_tflops_16bit=a.tflops,
        gpu_tflops_fp32=a.tflops_fp32, gpu_price_per_hour=a.price, corpus_tokens=a.corpus_tokens,
        epochs=a.epochs, utilisation=a.utilisation, calibration_run=a.run,
    )
    result = estimate(settings)
    print(json.dumps(result, indent=2) if a.json else table(result))
    return 0


def table(e: dict) -> str:
    """A plain-text side-by-side table of the estimate."""
    first = e["selected"]
    sides = [e[first], e["lora" if first == "full" else "full"]]
    rows = [("", *(s["method"].upper() for s in sides))]
    rows.append(("trainable parameters", *(f"{s['params']['trainable']:,} ({s['params']['trainable_percent']:.2f}%)"
                                          for s in sides)))
    for part in PARTS:
        rows.append((f"memory: {part}", *(gib(s["memory"]["parts"][part]) for s in sides)))
    rows.append(("peak allocated", *(gib(s["memory"]["peak_allocated"]) for s in sides)))
    fits = [("yes" if s["memory"]["fits"] else "NO") + f" ({gib(s['memory']['total'])})" for s in sides]
    rows.append((f"fits {e['gpu']['name']}", *fits))
    rows.append(("checkpoint on disk", *(mib(s["checkpoint"]["model_or_adapter"]) for s in sides)))
    rows.append(("GFLOPs per token", *(f"{s['flops']['per_token'] / 1e9:.3f}" for s in sides)))
    if sides[0]["time"]:
        rows.append(("time per epoch", *(f"{s['time']['seconds_per_epoch'] / 60:.1f} min" for s in sides)))
        rows.append(("cost per epoch", *(f"${s['time']['cost_per_epoch']:.2f}" for s in sides)))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines += ["", e["reduction"]["text"], *(row["text"] for row in e["reduction"]["per_shape"])]
    if e.get("calibration"):
        c = e["calibration"]
        lines.append(f"run {c['run_id']}: measured {c['measured_tokens_per_s']:,.0f} tokens/s, "
                     f"peak {gib(c['measured_peak_memory_bytes'])} (predicted {gib(c['predicted_peak_memory_bytes'])})")
    return "\n".join(lines + ["", *e["notes"]])


