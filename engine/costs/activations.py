"""The forward pass of BERT-, RoBERTa- and DistilBERT-style MLMs, op by op, for the replay
(ModernBERT's is in engine/costs/modernbert.py).

Each function mirrors the transformers 5 module's forward (embeddings, one encoder
layer, the MLM head and loss) with the same module names, so the replay can ask the
parameter report whether a module trains or carries a LoRA adapter.
"""

from __future__ import annotations

from engine.costs.arch import Arch
from engine.costs.params import ParamReport
from engine.costs.trace import Replay, StepShape, Sym, Trace

PREFIX = {"bert": "bert", "roberta": "roberta", "distilbert": "distilbert"}
HEAD = {  # transform dense, its LayerNorm, the vocabulary projection
    "bert": ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm", "cls.predictions.decoder"),
    "roberta": ("lm_head.dense", "lm_head.layer_norm", "lm_head.decoder"),
    "distilbert": ("vocab_transform", "vocab_layer_norm", "vocab_projector"),
}


def trace_step(arch: Arch, params: ParamReport, shape: StepShape, lora_dropout: float = 0.0) -> Trace:
    """Saved tensors and FLOPs of one training step (forward, loss, backward)."""
    rp = Replay(arch, params, shape, lora_dropout)
    embeddings, layer, head, classifier = _parts(arch.family)
    x = embeddings(rp)
    # engine/mlm_head.py (install): our loop runs the last layer past attention on the masked
    # rows only (not under checkpointing, where the layer must re-run the same way).
    masked_last = not shape.head_all and not shape.checkpointing and not shape.num_labels
    for index in range(arch.layers):
        rp.segment = f"layer.{index}"
        rows = shape.head_rows if masked_last and index == arch.layers - 1 else None

        def run(h: Sym, i: int = index, r: int | None = rows) -> Sym:
            return layer(rp, h, i, r)

        x = rp.checkpointed(run, x) if shape.checkpointing else run(x)
    rp.segment = "head"
    (classifier if shape.num_labels else head)(rp, x)
    return rp.trace


def _parts(family: str):
    """(embeddings, layer, MLM head + loss, classifier + loss) of a family's forward."""
    if family == "modernbert":
        from engine.costs import modernbert

        return modernbert.embeddings, modernbert.layer, modernbert.head_and_loss, modernbert.classifier_and_loss
    layer = _distilbert_layer if family == "distilbert" else _bert_layer
    return _embeddings, layer, _head_and_loss, _classifier_and_loss


def _embeddings(rp: Replay) -> Sym:
    arch, shape = rp.arch, rp.shape
    pre = f"{PREFIX[arch.family]}.embeddings"
    rows = shape.batch * shape.seq
    ids = Sym(rows, "int64", False)
    x = rp.embedding(ids, f"{pre}.word_embeddings", rows)
    if shape.checkpointing and rp.params.method == "lora":
        x.grad = True  # transformers' enable_input_require_grads, so checkpointed layers see a graph
    # Position ids: BERT and DistilBERT slice a buffer (nothing new is kept); RoBERTa
    # computes them from input_ids. Token type ids are gathered from a buffer at the
    # position ids: one row for BERT, one per sequence for RoBERTa.
    fresh = arch.family == "roberta"
    if arch.family != "distilbert":
        types = Sym(rows if fresh else shape.seq, "int64", False)
        x = rp.add(x, rp.embedding(types, f"{pre}.token_type_embeddings", rows))
    positions = Sym(rows, "int64", False) if fresh else None
    x = rp.add(x, rp.embedding(positions, f"{pre}.position_embeddings", rows))
    x = rp.layer_norm(x, f"{pre}.LayerNorm")
    return rp.dropout(x, arch.hidden_dropout)


def _bert_layer(rp: Replay, x: Sym, index: int, rows: int | None = None) -> Sym:
    a = rp.arch
    h, pre = a.hidden, f"{PREFIX[a.family]}.encoder.layer.{index}"
    q = rp.linear(x, f"{pre}.attention.self.query", h, h)
    k = rp.linear(x, f"{pre}.attention.self.key", h, h)
    v = rp.linear(x, f"{pre}.attention.self.value", h, h)
    ctx = rp.attention(q, k, v)
    if rows is not None:  # the rest runs on the masked rows only
        ctx, x = rp.pick_rows(ctx, rows), rp.pick_rows(x, rows)
    out = rp.dropout(rp.linear(ctx, f"{pre}.attention.output.dense", h, h), a.hidden_dropout)
    x1 = rp.layer_norm(rp.add(out, x), f"{pre}.attention.output.LayerNorm")
    mid = rp.gelu(rp.linear(x1, f"{pre}.intermediate.dense", h, a.intermediate))
    out = rp.dropout(rp.linear(mid, f"{pre}.output.dense", a.intermediate, h), a.hidden_dropout)
    y = rp.layer_norm(rp.add(out, x1), f"{pre}.output.LayerNorm")
    return y if rows is None else rp.put_rows(y, rows)


def _distilbert_layer(rp: Replay, x: Sym, index: int, rows: int | None = None) -> Sym:
    a = rp.arch
    h, pre = a.hidden, f"distilbert.transformer.layer.{index}"
    q = rp.linear(x, f"{pre}.attention.q_lin", h, h)
    k = rp.linear(x, f"{pre}.attention.k_lin", h, h)
    v = rp.linear(x, f"{pre}.attention.v_lin", h, h)
    ctx = rp.attention(q, k, v)
    out = rp.linear(ctx, f"{pre}.attention.out_lin", h, h)  # DistilBERT has no dropout here
    if rows is not None:  # the rest runs on the masked rows only
        out, x = rp.pick_rows(out, rows), rp.pick_rows(x, rows)
    x1 = rp.layer_norm(rp.add(out, x), f"{pre}.sa_layer_norm")
    mid = rp.gelu(rp.linear(x1, f"{pre}.ffn.lin1", h, a.intermediate))
    out = rp.dropout(rp.linear(mid, f"{pre}.ffn.lin2", a.intermediate, h), a.hidden_dropout)
    y = rp.layer_norm(rp.add(out, x1), f"{pre}.output_layer_norm")
    return y if rows is None else rp.put_rows(y, rows)


def _head_and_loss(rp: Replay, x: Sym) -> None:
    arch, shape = rp.arch, rp.shape
    dense, norm, decoder = HEAD[arch.family]
    rows = shape.batch * shape.seq
    n = rows if shape.head_all else shape.head_rows
    if not shape.head_all:  # engine.mlm_head: hidden[labels != -100]
        x = rp.pick_rows(x, n)
    t = rp.layer_norm(rp.gelu(rp.linear(x, dense, arch.hidden, arch.hidden)), norm)
    rp.vocabulary_loss(rp.linear(t, decoder, arch.hidden, arch.vocab), n)


CLASSIFIER = {  # the dense layer on the [CLS] row, then the projection to the labels
    "bert": ("bert.pooler.dense", "classifier"),
    "roberta": ("classifier.dense", "classifier.out_proj"),
    "distilbert": ("pre_classifier", "classifier"),
}


def _classifier_and_loss(rp: Replay, x: Sym) -> None:
    """*ForSequenceClassification: the [CLS] row of each sequence, a dense layer with its activation
    (tanh for BERT/RoBERTa, ReLU for DistilBERT: each keeps one tensor of its size, as gelu does
    here), dropout, the projection to num_labels, and cross-entropy in fp32."""
    arch, shape = rp.arch, rp.shape
    dense, out = CLASSIFIER[arch.family]
    cls = Sym(shape.batch * arch.hidden, x.dtype, x.grad)  # hidden[:, 0]: a view, nothing kept
    pooled = rp.dropout(rp.gelu(rp.linear(cls, dense, arch.hidden, arch.hidden)), arch.hidden_dropout)
    logits = rp.linear(pooled, out, arch.hidden, shape.num_labels)
    if logits.grad:
        rp.save(Sym(shape.batch * shape.num_labels, "fp32", False), part="logits")  # log_softmax's output
        rp.save(Sym(shape.batch, "int64", False))  # the labels
    rp.trace.forward_transient = logits.nbytes
    rp.trace.backward_transient = 2 * shape.batch * shape.num_labels * 4
