"""Run the encoder, then the MLM head only where it is needed.

A *ForMaskedLM forward projects every batch x sequence position onto the whole
vocabulary (30,522 columns for BERT), although the loss and fill-mask only read the
masked positions (~15%). transformers has no switch for this in its MLM classes, so
we call the encoder and the head separately and gather the masked rows in between.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine import masked_last_layer


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
    raise ValueError(f"No known MLM head on {type(inner).__name__}")


def masked_logits(model, input_ids, attention_mask, positions: torch.Tensor) -> torch.Tensor:
    """Logits at `positions` (a boolean mask of input_ids' shape), one row per True.

    Where engine.masked_last_layer is installed (training does), the last layer too runs
    its feed-forward part only at those positions."""
    with masked_last_layer.only_rows(positions):
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
    with masked_last_layer.only_rows(rows):
        hidden = encoder_hidden(model, input_ids)
    logits = head_logits(model, hidden.reshape(-1, hidden.shape[-1]).index_select(0, rows))
    total = F.cross_entropy(logits.float(), flat.index_select(0, rows), reduction="sum")
    return total / (~unmasked).sum().clamp(min=1)  # no masked token: 0, as masked_lm_loss gives
