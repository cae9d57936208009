"""Run the encoder, then the MLM head (and the last layer past its attention) on masked rows only.

A *ForMaskedLM forward projects every batch x sequence position onto the whole
vocabulary (30,522 columns for BERT), although the loss and fill-mask only read the
masked positions (~15%). transformers has no switch for this in its MLM classes, so
we call the encoder and the head separately and gather the masked rows in between.

The same holds one layer earlier. Every layer but the last must run everywhere, because
attention mixes all positions into the next layer, but the last layer's feed-forward block
(two thirds of a BERT layer's weights) and, for BERT-style layers, its attention output
projection are per-position, so 85% of their work would be thrown away. MosaicBERT computes
its last layer on the masked tokens for the same reason. The last layer's attention still
runs over the whole sequence, so the rows we keep are exactly what the full layer gives:
tests check loss and gradients against the model's own forward.

transformers has no switch for that either, so `install` replaces the `forward` of the last
layer's instance (not its class; parameters and saved weights are untouched). The
replacement does the subset only inside `only_rows(positions)`, which `masked_logits`
enters; any other call of the model, fill-mask for example, gets the layer's own forward.
Layers of another shape than BERT/RoBERTa's, DistilBERT's or the pre-norm ones of ModernBERT and
EuroBERT are left alone.
"""

from __future__ import annotations

import contextlib
import contextvars
import types

import torch
import torch.nn.functional as F
from torch import nn


def unwrap(model):
    """The *ForMaskedLM inside a peft PeftModel (LoRA layers are injected in place)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def encoder_hidden(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    inner = unwrap(model)
    out = inner.base_model(input_ids=input_ids, attention_mask=attention_mask)
    return out[0]


def head_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    """Vocabulary logits for hidden states of shape (..., hidden)."""
    inner = unwrap(model)
    if hasattr(inner, "cls"):  # BERT family
        return inner.cls(hidden)
    if hasattr(inner, "lm_head"):  # RoBERTa family
        return inner.lm_head(hidden)
    if hasattr(inner, "vocab_projector"):  # DistilBERT
        h = inner.activation(inner.vocab_transform(hidden))
        return inner.vocab_projector(inner.vocab_layer_norm(h))
    if hasattr(inner, "head") and hasattr(inner, "decoder"):  # ModernBERT (its encoder already ends in final_norm)
        return inner.decoder(inner.head(hidden))
    raise ValueError(f"No known MLM head on {type(inner).__name__}")


def masked_logits(model, input_ids, attention_mask, positions: torch.Tensor) -> torch.Tensor:
    """Logits at `positions` (a boolean mask of input_ids' shape), one row per True.

    Where `install` was called (training does), the last layer too runs its feed-forward
    part only at those positions."""
    with only_rows(positions):
        hidden = encoder_hidden(model, input_ids, attention_mask)
    return head_logits(model, hidden[positions])


def masked_lm_loss(model, batch: dict) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over masked tokens, and how many there were.

    Equal to the model's own `outputs.loss` (labels -100 elsewhere) but without
    building the full (batch, seq, vocab) logits tensor.
    """
    labels = batch["labels"]
    picked = labels != -100
    n = int(picked.sum())
    if n == 0:
        return torch.zeros((), device=labels.device, requires_grad=True), 0
    logits = masked_logits(model, batch["input_ids"], batch.get("attention_mask"), picked)
    return F.cross_entropy(logits.float(), labels[picked]), n

# ---------------------------------------------------------------- the last layer on masked rows

_ROWS: contextvars.ContextVar[torch.Tensor | None] = contextvars.ContextVar("mlm_rows", default=None)
_DECODER_ARGS = ("encoder_hidden_states", "encoder_attention_mask", "past_key_values")  # None in an encoder


def encoder_layers(base: nn.Module) -> nn.ModuleList | None:
    for path in ("encoder.layer", "transformer.layer", "layers"):  # BERT/RoBERTa, DistilBERT, ModernBERT/EuroBERT
        owner = base
        for name in path.split("."):
            owner = getattr(owner, name, None)
        if isinstance(owner, nn.ModuleList) and len(owner) > 0:
            return owner
    return None


def pick(t: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The rows of t (batch, seq, ...) that `rows` names: a boolean mask of (batch, seq), or
    flat indices into batch x seq. Indices keep the shape static (a fixed count), which
    torch.compile and CUDA graphs need (engine/training/compiled.py); a mask does not."""
    if rows.dtype == torch.bool:
        return t[rows]
    return t.reshape(-1, *t.shape[2:]).index_select(0, rows)


def _bert_rows(layer, hidden, attention_mask, rows, **kwargs):
    """BertLayer (and RoBERTa's copy) with the rows picked after self-attention."""
    attended, _ = layer.attention.self(hidden, attention_mask=attention_mask, **kwargs)
    kept = layer.attention.output(pick(attended, rows), pick(hidden, rows))  # projection, dropout, residual, LN
    return layer.feed_forward_chunk(kept)


def _distilbert_rows(block, hidden, attention_mask, rows, **kwargs):
    """DistilBERT's TransformerBlock (its attention module already holds the output projection)."""
    attended, _ = block.attention(hidden, attention_mask=attention_mask, **kwargs)
    kept = block.sa_layer_norm(pick(attended, rows) + pick(hidden, rows))
    return block.output_layer_norm(block.ffn.ff_chunk(kept) + kept)


# Pre-norm layers, by the names of (attention norm, attention, MLP norm, MLP): x + attn(norm(x)),
# then x + mlp(norm(x)). ModernBERT (alternating local/global attention inside `attn`, GeGLU) and
# Llama-style encoders such as EuroBERT (GQA, SwiGLU, RMSNorm).
PRE_NORM = {
    "modernbert": ("attn_norm", "attn", "mlp_norm", "mlp"),
    "llama": ("input_layernorm", "self_attn", "post_attention_layernorm", "mlp"),
}


def _pre_norm_rows(names: tuple[str, str, str, str]):
    attn_norm, attn, mlp_norm, mlp = names

    def rows_fn(layer, hidden, attention_mask, rows, **kwargs):
        # Attention still sees every position; only its output rows at `rows` go on.
        attended, _ = getattr(layer, attn)(getattr(layer, attn_norm)(hidden), attention_mask=attention_mask, **kwargs)
        kept = pick(hidden, rows) + pick(attended, rows)
        return kept + getattr(layer, mlp)(getattr(layer, mlp_norm)(kept))

    return rows_fn


def _fits(rows: torch.Tensor, hidden: torch.Tensor) -> bool:
    if rows.dtype == torch.bool:
        return rows.shape == hidden.shape[:-1]
    return rows.dim() == 1 and hidden.dim() == 3


def _scatter(picked: torch.Tensor, rows: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """A (batch, seq, hidden) tensor with `picked` at `rows`; rows the loss never reads stay 0."""
    if rows.dtype == torch.bool:
        out = picked.new_zeros(shape)
        out[rows] = picked
        return out
    flat = picked.new_zeros(shape[0] * shape[1], shape[2])
    return flat.index_copy(0, rows, picked).view(shape)


def _shape_of(layer: nn.Module):
    if getattr(layer, "add_cross_attention", False) or getattr(layer, "is_decoder", False):
        return None
    attention = getattr(layer, "attention", None)
    if hasattr(attention, "self") and hasattr(attention, "output") and hasattr(layer, "feed_forward_chunk"):
        return _bert_rows
    if all(hasattr(layer, n) for n in ("sa_layer_norm", "ffn", "output_layer_norm")) and hasattr(layer.ffn, "ff_chunk"):
        return _distilbert_rows
    for names in PRE_NORM.values():
        if all(hasattr(layer, n) for n in names):
            return _pre_norm_rows(names)
    return None


def install(base_model: nn.Module) -> bool:
    """Give the encoder's last layer the subset path; False when its shape is not one we know."""
    layers = encoder_layers(base_model)
    if layers is None:
        return False
    last = layers[-1]
    if getattr(last, "_mlm_rows_installed", False):
        return True
    rows_fn = _shape_of(last)
    if rows_fn is None:
        return False

    # No closure over `last` or its bound forward: a deep copy of the model rebinds this
    # method to the copy's layer, and the copy must not call back into the original.
    def forward(self, hidden_states, attention_mask=None, *args, **kwargs):
        rows = _ROWS.get()
        decoding = any(a is not None for a in args) or any(kwargs.get(k) is not None for k in _DECODER_ARGS)
        # A checkpointed layer re-runs its forward during backward, outside only_rows: it
        # must give the same tensors both times, so it keeps the whole layer.
        checkpointed = getattr(self, "gradient_checkpointing", False) and self.training
        if rows is None or decoding or checkpointed or not _fits(rows, hidden_states):
            return type(self).forward(self, hidden_states, attention_mask, *args, **kwargs)
        kwargs = {k: v for k, v in kwargs.items() if k not in _DECODER_ARGS}
        picked = rows_fn(self, hidden_states, attention_mask, rows, **kwargs)
        return _scatter(picked, rows, hidden_states.shape)

    last.forward = types.MethodType(forward, last)
    last._mlm_rows_installed = True
    return True


def installed(base_model: nn.Module) -> bool:
    layers = encoder_layers(base_model)
    return layers is not None and getattr(layers[-1], "_mlm_rows_installed", False)


@contextlib.contextmanager
def only_rows(positions: torch.Tensor):
    """Within this block, an installed last layer computes only where `positions` is True
    (a boolean mask of (batch, seq)) or at the flat indices it lists."""
    token = _ROWS.set(positions)
    try:
        yield
    finally:
        _ROWS.reset(token)

def static_masked_lm_loss(model, input_ids: torch.Tensor, labels: torch.Tensor, capacity: int) -> torch.Tensor:
    """masked_lm_loss with shapes fixed by `capacity` (at least the batch's masked count).

    The loss above picks the masked rows with a boolean mask: their number, and so every
    shape after it, is known only once the device has counted them (a host-device sync,
    and a shape torch.compile and CUDA graphs cannot fix). Here a stable sort puts the
    masked positions first and the first `capacity` positions are kept: the extra ones
    carry label -100, which cross-entropy ignores, so the loss is the same mean over the
    masked tokens, and nothing waits for the device.
    """
    flat = labels.reshape(-1)
    unmasked = flat == -100
    rows = torch.argsort(unmasked.to(torch.uint8), stable=True)[:capacity]
    with only_rows(rows):
        hidden = encoder_hidden(model, input_ids)
    logits = head_logits(model, hidden.reshape(-1, hidden.shape[-1]).index_select(0, rows))
    total = F.cross_entropy(logits.float(), flat.index_select(0, rows), reduction="sum")
    return total / (~unmasked).sum().clamp(min=1)  # no masked token: 0, as masked_lm_loss gives
