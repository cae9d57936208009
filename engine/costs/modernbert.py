"""ModernBERT's forward pass, op by op, for the replay (engine/costs/trace.py).

Mirrors transformers 5's ModernBertForMaskedLM: token embeddings and a LayerNorm (no position
table: rotary), then pre-norm layers (layer 0 has no attention norm) whose attention is global
every third layer and a sliding window (128 tokens) otherwise, a fused Wqkv projection, GeGLU
feed-forward (Wi gives input and gate at once), no biases, a final norm, and the head (dense,
GELU, norm) before the tied decoder.

What differs from BERT in what autograd keeps, checked on CPU with saved_tensors_hooks:
- rotary: q·cos + rotate_half(q)·sin keeps cos and sin, one pair per attention type (the
  sliding layers use another base), and the rotated q and k are new tensors that attention keeps;
  v stays a view of the Wqkv output, so attention keeps that whole storage (3 x hidden per token);
- the sliding window is an attention mask under SDPA (transformers' default kernel): each
  sliding layer keeps its own batch x seq x seq mask for backward, and SDPA computes every
  score (the window saves no FLOPs and costs memory that grows with seq^2, about 3.7 GB per
  sequence at 8,192 tokens for ModernBERT-base; flash-attention-2 applies the window natively);
- GeGLU keeps the Wi output (input and gate are views of it) and GELU(input).
"""

from __future__ import annotations

from engine.costs.trace import Replay, Sym

PRE = "model"


def embeddings(rp: Replay) -> Sym:
    shape = rp.shape
    rows = shape.batch * shape.seq
    x = rp.embedding(Sym(rows, "int64", False), f"{PRE}.embeddings.tok_embeddings", rows)
    if shape.checkpointing and rp.params.method == "lora":
        x.grad = True  # transformers' enable_input_require_grads, as for BERT
    x = rp.layer_norm(x, f"{PRE}.embeddings.norm")
    return rp.dropout(x, rp.arch.hidden_dropout)


def layer(rp: Replay, x: Sym, index: int, rows: int | None = None) -> Sym:
    a, s = rp.arch, rp.shape
    h, pre = a.hidden, f"{PRE}.layers.{index}"
    normed = x if index == 0 else rp.layer_norm(x, f"{pre}.attn_norm")  # layer 0: nn.Identity
    qkv = rp.linear(normed, f"{pre}.attn.Wqkv", h, 3 * h)
    kind = a.layer_types[index] if index < len(a.layer_types) else "full_attention"
    q, k = _rotary(rp, qkv, kind), _rotary(rp, qkv, kind)
    if kind == "sliding_attention" and (q.grad or k.grad) and s.seq > 1:
        # SDPA's backward keeps the mask it was given: one per layer, in the dtype attention runs in
        # (half under autocast, measured: the additive mask is cast with q and k)
        half = s.autocast or s.precision == "bf16-pure"
        rp.save(Sym(s.batch * s.seq * s.seq, "half" if half else "fp32", False))
    if s.autocast:  # autocast runs SDPA in half precision: the fp32 rotated q and k are cast
        q, k = rp.cast(q, "half"), rp.cast(k, "half")
    ctx = rp.attention_fused(q, k, qkv)  # v is a view of the whole Wqkv output
    out = rp.dropout(rp.linear(ctx, f"{pre}.attn.Wo", h, h), a.attention_dropout)
    if rows is not None:  # engine.mlm_head: the rest of the last layer on the masked rows only
        out, x = rp.pick_rows(out, rows), rp.pick_rows(x, rows)
    x1 = rp.add(x, out)
    y = rp.add(x1, _geglu(rp, rp.layer_norm(x1, f"{pre}.mlp_norm"), pre))
    return y if rows is None else rp.put_rows(y, rows)


def _rotary(rp: Replay, qkv: Sym, kind: str) -> Sym:
    """q (or k) rotated: keeps this attention type's cos and sin (seq x head_dim each, shared by
    every layer of the type and by q and k); the result is a new tensor in cos's dtype (fp32
    unless the whole model is bf16)."""
    s, a = rp.shape, rp.arch
    part = qkv.numel // 3
    if qkv.grad:
        dtype = "half" if s.precision == "bf16-pure" else "fp32"
        if kind not in rp.rotary:
            rp.rotary[kind] = tuple(Sym(s.seq * (a.hidden // a.heads), dtype, False) for _ in range(2))
        for t in rp.rotary[kind]:
            rp.save(t)
    out_dtype = "half" if s.precision == "bf16-pure" else "fp32"
    return Sym(part, out_dtype if s.autocast or s.precision == "bf16-pure" else qkv.dtype, qkv.grad)


def _geglu(rp: Replay, x: Sym, pre: str) -> Sym:
    """Wo(drop(GELU(input) * gate)) with input, gate = Wi(x).chunk(2)."""
    a = rp.arch
    wi = rp.linear(x, f"{pre}.mlp.Wi", a.hidden, 2 * a.intermediate)
    rows = wi.numel // (2 * a.intermediate)
    if wi.grad:
        rp.save(wi)  # GELU keeps `input` and the product keeps `gate`: both views of Wi's output
    act = Sym(rows * a.intermediate, wi.dtype, wi.grad)
    if wi.grad:
        rp.save(act)  # the product keeps GELU(input) for the gate's gradient
    prod = rp.dropout(Sym(act.numel, wi.dtype, wi.grad), a.hidden_dropout)
    return rp.linear(prod, f"{pre}.mlp.Wo", a.intermediate, a.hidden)


def head_and_loss(rp: Replay, x: Sym) -> None:
    """final_norm, then (on the masked rows, or every row) head.dense, GELU, head.norm, decoder."""
    x = rp.layer_norm(x, f"{PRE}.final_norm")
    shape = rp.shape
    n = shape.batch * shape.seq if shape.head_all else shape.head_rows
    if not shape.head_all:
        x = rp.pick_rows(x, n)
    t = rp.layer_norm(rp.gelu(rp.linear(x, "head.dense", rp.arch.hidden, rp.arch.hidden)), "head.norm")
    rp.vocabulary_loss(rp.linear(t, "decoder", rp.arch.hidden, rp.arch.vocab), n)


def classifier_and_loss(rp: Replay, x: Sym) -> None:
    """ModernBertForSequenceClassification: final_norm, pooling over the sequence (mean: the
    product with the mask keeps the mask; cls: a view of row 0), head (dense, GELU, norm),
    dropout, classifier, cross-entropy."""
    import json

    a, shape = rp.arch, rp.shape
    x = rp.layer_norm(x, f"{PRE}.final_norm")
    if json.loads(a.config_json).get("classifier_pooling", "cls") == "mean" and x.grad:
        rp.save(Sym(shape.batch * shape.seq, "bool", False))  # attention_mask.unsqueeze(-1), kept by the product
    pooled = Sym(shape.batch * a.hidden, x.dtype, x.grad)
    t = rp.layer_norm(rp.gelu(rp.linear(pooled, "head.dense", a.hidden, a.hidden)), "head.norm")
    logits = rp.linear(rp.dropout(t, a.hidden_dropout), "classifier", a.hidden, shape.num_labels)
    if logits.grad:
        rp.save(Sym(shape.batch * shape.num_labels, "fp32", False), part="logits")
        rp.save(Sym(shape.batch, "int64", False))
    rp.trace.forward_transient = logits.nbytes
    rp.trace.backward_transient = 2 * shape.batch * shape.num_labels * 4
