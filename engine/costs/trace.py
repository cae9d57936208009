"""What autograd keeps for backward, replayed symbolically for one training step.

Formula tables for activation memory (e.g. "34·s·b·h per layer") assume one precision,
one attention kernel and that every weight trains. LoRA breaks the last assumption in
ways that matter: a frozen Linear does not keep its input (autograd saves it only for
the weight gradient), the first layers keep nothing until a trainable module appears,
and under autocast every frozen weight's half-precision copy is kept for the input
gradient. So instead of a table we replay the encoder's forward with symbolic tensors
(size, dtype, requires-grad, storage) and apply PyTorch's saving rules op by op. Each
storage is counted once, as autograd would hold it. The same replay counts FLOPs, so
LoRA's skipped weight gradients show up in time as well as memory.

Rules verified on CPU against torch.autograd.graph.saved_tensors_hooks (tests/test_costs_activations.py);
the CUDA-only rules (1-byte dropout masks, the fused attention kernel) follow PyTorch's
kernels and are what bench/costs_gpu.py checks on a GPU.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from engine.costs.arch import Arch
from engine.costs.params import ParamReport

BYTES = {"fp32": 4, "half": 2, "bool": 1, "int64": 8, "f64": 8}
PRECISIONS = ("fp32", "fp16", "bf16", "bf16-pure")
_ids = itertools.count(1)


@dataclass(frozen=True)
class StepShape:
    batch: int
    seq: int
    head_rows: int  # rows the MLM head sees: the masked positions, or batch*seq for all
    head_all: bool  # the model's own loss over every position (vs engine.mlm_head's masked rows)
    precision: str = "fp32"  # fp32 | fp16 | bf16 (mixed, autocast) | bf16-pure
    device: str = "cuda"  # cuda | cpu: dropout masks and the attention kernel differ
    checkpointing: bool = False
    num_labels: int = 0  # > 0: a sequence classifier ([CLS] pooler + classifier) instead of the MLM head

    @property
    def autocast(self) -> bool:
        return self.precision in ("fp16", "bf16")

    @property
    def param_dtype(self) -> str:
        return "half" if self.precision == "bf16-pure" else "fp32"

    @property
    def compute_dtype(self) -> str:
        return "fp32" if self.precision == "fp32" else "half"


@dataclass
class Sym:
    """A tensor as the trace sees it: element count, dtype, requires-grad and its storage."""

    numel: int
    dtype: str
    grad: bool
    sid: int = field(default_factory=lambda: next(_ids))

    @property
    def nbytes(self) -> int:
        return self.numel * BYTES[self.dtype]


@dataclass
class Trace:
    """Saved bytes by segment and part, and FLOPs, for one forward + backward."""

    saved: dict[int, tuple[int, str, str]] = field(default_factory=dict)  # sid -> (bytes, part, segment)
    flops_forward: int = 0
    flops_backward: int = 0
    flops_recompute: int = 0
    head_flops: int = 0  # forward + backward FLOPs spent in the MLM head
    attention_flops: int = 0  # forward + backward FLOPs of the score and context matmuls
    recompute_peak: int = 0  # largest layer re-run during backward under checkpointing
    forward_transient: int = 0  # logits buffers alive at the end of forward, not saved
    backward_transient: int = 0  # gradient buffers of the loss alive at the head's backward

    def bytes(self, part: str | None = None, segment: str | None = None) -> int:
        return sum(b for b, p, s in self.saved.values()
                   if (part is None or p == part) and (segment is None or s == segment))


class Replay:
    """Applies PyTorch's save-for-backward rules to symbolic tensors."""

    def __init__(self, arch: Arch, params: ParamReport, shape: StepShape, lora_dropout: float = 0.0):
        self.arch, self.params, self.shape, self.lora_dropout = arch, params, shape, lora_dropout
        self.trace = Trace()
        self.segment = "embeddings"
        self.recording = True
        self._weight_copies: set[str] = set()
        self.rotary: dict[str, tuple[Sym, Sym]] = {}  # ModernBERT's cos and sin, per attention type
        # labels != -100: one bool tensor, kept by every indexing that uses it (counted once)
        self.picked = Sym(shape.batch * shape.seq, "bool", False)

    # -- bookkeeping
    def save(self, t: Sym, part: str = "activations") -> None:
        if self.recording and t.sid not in self.trace.saved:
            self.trace.saved[t.sid] = (t.nbytes, part, self.segment)
        elif not self.recording:
            self._scratch[t.sid] = t.nbytes

    def flops(self, forward: int, backward: int) -> None:
        self.trace.flops_forward += forward
        if self.recording:
            self.trace.flops_backward += backward
        else:  # a checkpointed layer: its forward runs again inside the backward
            self.trace.flops_recompute += forward
            self._scratch_flops += backward
        if self.segment == "head":
            self.trace.head_flops += forward + backward

    # -- ops
    def cast(self, x: Sym, dtype: str) -> Sym:
        return x if x.dtype == dtype else Sym(x.numel, dtype, x.grad)

    def linear(self, x: Sym, module: str, d_in: int, d_out: int, trainable: bool | None = None) -> Sym:
        s, p = self.shape, self.params
        rows = x.numel // d_in
        trains = p.trains(module) if trainable is None else trainable
        xin = self.cast(x, "half") if s.autocast else x  # autocast casts activations on every call
        if trains:
            self.save(xin)  # needed for the weight gradient only
        if x.grad and s.autocast:
            self._weight_copy(module, d_in * d_out)  # needed for the input gradient only
        out = Sym(rows * d_out, s.compute_dtype if s.autocast else x.dtype, x.grad or trains)
        mm = 2 * rows * d_in * d_out
        self.flops(mm, mm * (int(x.grad) + int(trains)))
        r = p.lora_rank(module) if trainable is None else 0
        if r:
            out = self._lora(x, module, d_in, d_out, r, out)
        return out

    def _weight_copy(self, module: str, numel: int) -> None:
        # Under autocast the fp16/bf16 copy of a weight is what the backward multiplies by.
        if module not in self._weight_copies:
            self._weight_copies.add(module)
            self.save(Sym(numel, "half", False), part="weight copies")

    def _lora(self, x: Sym, module: str, d_in: int, d_out: int, r: int, base_out: Sym) -> Sym:
        # peft: result + lora_B(lora_A(dropout(x.to(lora dtype)))) * scaling
        x = self.cast(x, self.shape.param_dtype)
        dropped = self.dropout(x, self.lora_dropout)
        a = self.linear(dropped, module + ".lora_A", d_in, r, trainable=True)
        self.linear(a, module + ".lora_B", r, d_out, trainable=True)
        return Sym(base_out.numel, base_out.dtype, True)

    def dropout(self, x: Sym, p: float) -> Sym:
        if p <= 0:
            return x
        if x.grad:  # CUDA keeps a bool mask; the CPU kernel multiplies by a mask of x's dtype
            self.save(Sym(x.numel, "bool" if self.shape.device == "cuda" else x.dtype, False))
        return Sym(x.numel, x.dtype, x.grad)

    def layer_norm(self, x: Sym, module: str) -> Sym:
        s = self.shape
        trains = self.params.trains(module)
        # CUDA autocast runs layer_norm in fp32; CPU autocast runs it in the input's dtype.
        xin = self.cast(x, "fp32") if s.autocast and s.device == "cuda" else x
        if x.grad or trains:
            self.save(xin)
            rows = x.numel // self.arch.hidden
            self.save(Sym(rows, "fp32", False))  # mean
            self.save(Sym(rows, "fp32", False))  # rstd
        return Sym(x.numel, xin.dtype, x.grad or trains)

    def gelu(self, x: Sym) -> Sym:
        if x.grad:
            self.save(x)
        return Sym(x.numel, x.dtype, x.grad)

    def pick_rows(self, x: Sym, rows: int) -> Sym:
        """x[picked]: the rows at the masked positions; the backward keeps the bool mask."""
        if x.grad:
            self.save(self.picked)
        return Sym(rows * (x.numel // (self.shape.batch * self.shape.seq)), x.dtype, x.grad)

    def put_rows(self, y: Sym, rows: int) -> Sym:
        """zeros(batch, seq, ...)[picked] = y: back to every position; the backward keeps the mask."""
        if y.grad:
            self.save(self.picked)
        return Sym(self.shape.batch * self.shape.seq * (y.numel // rows), y.dtype, y.grad)

    @staticmethod
    def add(a: Sym, b: Sym) -> Sym:
        dtype = "fp32" if "fp32" in (a.dtype, b.dtype) else a.dtype
        return Sym(a.numel, dtype, a.grad or b.grad)

    def embedding(self, indices: Sym, module: str, rows: int) -> Sym:
        trains = self.params.trains(module)
        if trains and indices is not None:
            self.save(indices)
        return Sym(rows * self.arch.hidden, self.shape.param_dtype, trains)

    def attention(self, q: Sym, k: Sym, v: Sym) -> Sym:
        s, a = self.shape, self.arch
        b, n = s.batch, s.seq
        scores = b * a.heads * n * n
        mm = 2 * b * n * n * a.hidden  # one of the two batched matmuls
        if s.device == "cuda":
            return self._fused_attention(q, k, v, mm)
        # CPU (math kernel): scaled copies of q, k, v; reduced precision is upcast to fp32.
        dt = "fp32" if s.device == "cpu" else q.dtype
        q2, k2, v2 = (Sym(t.numel, dt, t.grad) for t in (q, k, v))
        if k.grad:
            self.save(q2)
        if q.grad:
            self.save(k2)
        probs = Sym(scores, dt, q.grad or k.grad)
        if probs.grad:
            self.save(probs)  # softmax keeps its output
        dropped = self.dropout(probs, a.attention_dropout)
        if v.grad:
            self.save(dropped)
        if dropped.grad:
            self.save(v2)
        back = mm * (int(q.grad) + int(k.grad) + int(dropped.grad) + int(v.grad))
        self.flops(2 * mm, back)
        self.trace.attention_flops += 2 * mm + back
        return Sym(q.numel, q.dtype, q.grad or k.grad or v.grad)  # transpose + reshape copy

    def vocabulary_loss(self, logits: Sym, n: int) -> None:
        """Cross-entropy over the vocabulary for `n` rows of logits (every family's MLM head ends here)."""
        shape = self.shape
        # The loss runs in fp32 (engine.mlm_head casts; autocast lists log_softmax as fp32),
        # except the model's own loss on a model cast wholly to bf16.
        loss_dtype = "half" if shape.head_all and shape.precision == "bf16-pure" else "fp32"
        result = Sym(n * self.arch.vocab, loss_dtype, logits.grad)
        if logits.grad:
            self.save(result, part="logits")  # log_softmax keeps its output
            self.save(Sym(n, "int64", False))  # the target ids nll_loss keeps
            self.save(Sym(1, "fp32", False))  # nll_loss's total weight
        fp32_copy = result.nbytes if logits.dtype != loss_dtype else 0
        self.trace.forward_transient = logits.nbytes + fp32_copy
        self.trace.backward_transient = 2 * result.nbytes if logits.grad else 0  # grad of log_softmax out and in

    def attention_fused(self, q: Sym, k: Sym, v: Sym) -> Sym:
        """Attention where the fused SDPA kernel runs on CPU too (PyTorch's CPU flash kernel, taken
        when there is no attention dropout: ModernBERT's default); `v` may be a wider storage that
        the value is a view of."""
        if self.shape.device == "cpu" and self.arch.attention_dropout > 0:
            return self.attention(q, k, Sym(q.numel, v.dtype, v.grad))
        return self._fused_attention(q, k, v, 2 * self.shape.batch * self.shape.seq ** 2 * self.arch.hidden)

    def _fused_attention(self, q: Sym, k: Sym, v: Sym, mm: int) -> Sym:
        # Flash / memory-efficient SDPA keep q, k, v (views of the projections), the output
        # and a log-sum-exp per row and head; dropout is regenerated from the RNG seed.
        grad = q.grad or k.grad or v.grad
        out = Sym(q.numel, q.dtype, grad)
        if grad:
            for t in (q, k, v, out):
                self.save(t)
            self.save(Sym(self.shape.batch * self.arch.heads * self.shape.seq, "fp32", False))
        back = 4 * mm if grad else 0
        self.flops(2 * mm, back)
        self.trace.attention_flops += 2 * mm + back
        return out  # its transpose back to (batch, seq, hidden) is a view of the same storage

    # -- checkpointed layers
    def checkpointed(self, layer_fn, x: Sym) -> Sym:
        """Non-reentrant checkpoint: keep the layer input; re-run the layer in backward."""
        self.save(x)
        self.recording, self._scratch, self._scratch_flops = False, {}, 0
        out = layer_fn(x)
        self.recording = True
        self.trace.recompute_peak = max(self.trace.recompute_peak, sum(self._scratch.values()))
        self.trace.flops_backward += self._scratch_flops
        return out
