"""Run the encoder's last layer past its attention only at the positions the loss reads.

Why: the MLM loss reads the last hidden state at the masked positions only (~15%). Every
earlier layer must run everywhere, because attention mixes all positions into the next
layer, but the last layer's feed-forward block (two thirds of a BERT layer's weights) and,
for BERT-style layers, its attention output projection are per-position, so the other
85% of their work is thrown away. MosaicBERT computes its last layer on the masked tokens
for the same reason. The last layer's attention still runs over the whole sequence, so
the rows we keep are exactly what the full layer gives: tests check loss and gradients
against the model's own forward.

transformers has no switch for this, so `install` replaces the `forward` of the last
layer's instance (not its class; parameters and saved weights are untouched). The
replacement does the subset only inside `only_rows(positions)`, which engine.mlm_head
uses; any other call of the model, fill-mask for example, gets the layer's own forward.
Layers of another shape than BERT/RoBERTa's or DistilBERT's are left alone.
"""

from __future__ import annotations

import contextlib
import contextvars
import types

import torch
from torch import nn

_ROWS: contextvars.ContextVar[torch.Tensor | None] = contextvars.ContextVar("mlm_rows", default=None)
_DECODER_ARGS = ("encoder_hidden_states", "encoder_attention_mask", "past_key_values")  # None in an encoder


def encoder_layers(base: nn.Module) -> nn.ModuleList | None:
    for path in ("encoder.layer", "transformer.layer"):  # BERT/RoBERTa, DistilBERT
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
