"""Peak GPU memory of a training step, by part: weights, gradients, optimizer state,
activations, logits and framework overhead.

Weights, gradients and optimizer state are exact products of parameter counts and
element sizes. Activations come from the replay (costs_trace.py). The peak is found by
walking one step: the end of the forward, the loss's backward (its gradient buffers are
vocabulary-sized), then layer by layer down the backward as saved tensors are freed and
gradients appear, then the optimizer step. Whichever moment holds most is the peak that
torch.cuda.max_memory_allocated reports; framework overhead (CUDA context, allocator
slack) comes on top for "does it fit".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from engine.costs.params import ParamReport
from engine.costs.trace import BYTES, StepShape, Trace

OPTIMIZERS = ("adamw", "adamw8bit", "sgd")
OPTIMIZER_LABELS = {"adamw": "AdamW", "adamw8bit": "8-bit AdamW (bitsandbytes)", "sgd": "SGD with momentum"}
PARTS = ("weights", "gradients", "optimizer", "activations", "logits", "margin", "overhead")
CUDA_CONTEXT_BYTES = 512 * 1024**2  # the CUDA context and its kernels; never in max_memory_allocated
ALLOCATOR_SLACK = 0.05  # the caching allocator reserves a little more than it hands out
MARGIN_REASON = ("what max_memory_allocated holds beyond the tensors above: cuBLAS workspaces, "
                 "autocast/gradient cast copies of weights, allocator rounding and fragmentation "
                 "(fitted on 8 measured H200 cases, checked on 4 more: docs/costs.md)")
PART_LABELS = {"margin": "margin (workspaces, cast copies, allocator rounding)"}
# The margin's terms. The replay counts every tensor autograd keeps exactly (saved bytes
# matched to the byte on an H200), yet max_memory_allocated was 4-12% above the walk's peak
# in all 12 measured cases (tests/data/costs_gpu_h200_*.json). What the walk misses:
CUBLAS_WORKSPACE_BYTES = 2 * 32 * 1024**2  # one 32 MiB workspace (Hopper's default size) per cuBLAS
# handle, allocated through PyTorch's allocator: the forward's thread and autograd's backward thread.
CAST_COPY_SHARE = 1.14  # mixed precision: half copies of the encoder layers' weight matrices alive
# beyond those saved (autocast's per-call casts of frozen weights, half gradients before their fp32
# accumulation), per weight; the measured excess grew by one such copy per layer (~16 MB for BERT-base)
ROUNDING_SHARE = 0.018  # per byte of activations and loss buffers: blocks rounded to 512 B, cached
# blocks handed out up to 1 MiB larger than asked (never split below that), fragmentation.
# CAST_COPY_SHARE and ROUNDING_SHARE were fitted on the 8 fp16 cases (all within +0.0..+3.3%) and
# checked on the 4 bf16 ones (+2.4..+3.7%), none predicted below what was measured.
BNB_MIN_8BIT_SIZE = 4096  # bitsandbytes keeps 32-bit state for smaller tensors
BNB_BLOCK = 256  # one fp32 absmax per block of 256 values, per state


def optimizer_state_bytes(numels: list[int], optimizer: str, param_bytes: int, include_step: bool = False) -> int:
    """Bytes of optimizer state for these trainable tensors.

    torch AdamW: exp_avg and exp_avg_sq in the parameter's dtype, plus a 4-byte step
    counter per tensor that stays on the CPU (include_step counts it). bitsandbytes 8-bit
    AdamW: two uint8 states plus one fp32 absmax per 256 values each; 32-bit states for
    tensors under 4096 values. SGD with momentum: one buffer in the parameter's dtype.
    """
    if optimizer == "adamw":
        return sum(2 * n * param_bytes for n in numels) + (4 * len(numels) if include_step else 0)
    if optimizer == "adamw8bit":
        return sum(2 * n + 2 * 4 * math.ceil(n / BNB_BLOCK) if n >= BNB_MIN_8BIT_SIZE else 2 * 4 * n for n in numels)
    if optimizer == "sgd":
        return sum(n * param_bytes for n in numels)
    raise ValueError(optimizer)


def optimizer_step_scratch(trainable: int, optimizer: str, param_bytes: int) -> int:
    """Temporaries of one optimizer step. Fused AdamW (this app's trainer, and transformers'
    Trainer default) and bitsandbytes update in place; torch's SGD with weight decay first
    builds a decayed copy of the gradients."""
    return trainable * param_bytes if optimizer == "sgd" else 0


@dataclass
class MemoryEstimate:
    parts: dict[str, int]  # what is alive at the peak moment (sums to total)
    peak_allocated: int  # comparable with torch.cuda.max_memory_allocated
    total: int  # plus framework overhead: compare with the GPU's memory
    moment: str
    weights: int  # whole-step sizes, independent of the moment
    gradients: int
    optimizer: int
    saved_for_backward: int

    def as_dict(self) -> dict:
        return asdict(self)


def estimate_memory(trace: Trace, params: ParamReport, shape: StepShape, layers: int,
                    optimizer: str = "adamw", grad_accum_steps: int = 1, device: str = "cuda",
                    layer_weights: int = 0) -> MemoryEstimate:
    """layer_weights: the weight matrices of one encoder layer (layer_matrix_weights), for the margin."""
    pb = BYTES[shape.param_dtype]
    weights = params.total * pb
    grads_all = params.trainable * pb
    opt = optimizer_state_bytes(params.trainable_numels, optimizer, pb)
    kept_grads = grads_all if grad_accum_steps > 1 else 0  # accumulation keeps them between micro-batches
    order = ["embeddings", *[f"layer.{i}" for i in range(layers)], "head"]
    saved = {seg: {p: trace.bytes(p, seg) for p in ("activations", "weight copies", "logits")} for seg in order}
    grads = {seg: params.trainable_by_segment.get(seg, 0) * pb for seg in order}

    def moment(name: str, below: list[str], grad_segments: list[str], extra_logits: int = 0,
               extra_acts: int = 0, opt_scratch: int = 0) -> tuple[str, dict[str, int]]:
        acts = sum(saved[s]["activations"] for s in below) + extra_acts
        copies = sum(saved[s]["weight copies"] for s in below)
        logits = sum(saved[s]["logits"] for s in below) + extra_logits
        g = kept_grads or sum(grads[s] for s in grad_segments)
        return name, {"weights": weights + copies, "gradients": g, "optimizer": opt + opt_scratch,
                      "activations": acts, "logits": logits}

    moments = [
        moment("end of forward", order, [], extra_logits=trace.forward_transient),
        moment("loss backward", order, [], extra_logits=trace.backward_transient),
    ]
    # Going down the backward: segment i is being processed, everything below still saved.
    for i in range(len(order) - 1, -1, -1):
        recompute = trace.recompute_peak if order[i].startswith("layer.") else 0
        moments.append(moment(f"backward through {order[i]}", order[: i + 1], order[i:], extra_acts=recompute))
    moments.append(("optimizer step", {"weights": weights, "gradients": grads_all,
                                       "optimizer": opt + optimizer_step_scratch(params.trainable, optimizer, pb),
                                       "activations": 0, "logits": 0}))
    name, parts = max(moments, key=lambda m: sum(m[1].values()))
    parts["margin"] = margin_bytes(parts, layers * layer_weights, shape.precision) if device == "cuda" else 0
    allocated = sum(parts.values())
    overhead = CUDA_CONTEXT_BYTES + int(ALLOCATOR_SLACK * allocated) if device == "cuda" else 0
    parts = {**parts, "overhead": overhead}
    return MemoryEstimate(parts, allocated, allocated + overhead, name, weights, grads_all, opt, trace.bytes())


def layer_matrix_weights(hidden: int, intermediate: int) -> int:
    """Weights of one encoder layer's matrices: query, key, value, output, and the two FFN ones."""
    return 4 * hidden * hidden + 2 * hidden * intermediate


def margin_bytes(parts: dict[str, int], encoder_weights: int, precision: str) -> int:
    """The allocated bytes the step walk does not see (MARGIN_REASON), so the estimate is
    never below torch.cuda.max_memory_allocated."""
    casts = CAST_COPY_SHARE * encoder_weights * 2 if precision in ("fp16", "bf16") else 0
    return int(CUBLAS_WORKSPACE_BYTES + casts + ROUNDING_SHARE * (parts["activations"] + parts["logits"]))


def checkpoint_bytes(params: ParamReport, shape: StepShape, optimizer_bytes: int) -> dict[str, int]:
    """Size on disk: the full model (safetensors, tied weights once) or the adapter alone,
    and a resumable checkpoint that adds the optimizer state."""
    pb = BYTES[shape.param_dtype]
    base_params = params.total - (params.adapter_params if params.method == "lora" else 0)
    model = params.adapter_params * pb if params.method == "lora" else base_params * pb
    return {"model_or_adapter": model, "resumable_checkpoint": model + optimizer_bytes}
