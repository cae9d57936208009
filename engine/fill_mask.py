"""Top-k predictions for every mask in a sentence.

One forward pass, the head applied at the mask positions only (engine.mlm_head),
so a request costs less than transformers' fill-mask pipeline on the same model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from engine.errors import UserError
from engine.mlm_head import masked_logits

MAX_CHARS = 5_000
MAX_MASKS = 10
MAX_TOP_K = 50
_MASK_SPELLINGS = re.compile(r"\[mask\]|<mask>", re.IGNORECASE)

PRESETS = [
    "This is a great [MASK].",
    "The capital of France is [MASK].",
    "I love [MASK] learning and [MASK] intelligence.",
    "The movie was [MASK], I would watch it again.",
    "The acting was [MASK] but the plot was [MASK].",
]


@dataclass
class Prediction:
    token: str
    token_id: int
    probability: float
    sequence: str


@dataclass
class FillMaskResult:
    text: str  # the text actually scored, with the model's own mask token
    masks: list[list[Prediction]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


def normalize(text: str | None, mask_token: str) -> tuple[str, list[str]]:
    """Map `[MASK]`/`<mask>` to the model's mask token; cut very long text with a notice."""
    notices: list[str] = []
    text = (text or "").strip()
    if not text:
        raise UserError("Type a sentence with at least one [MASK] (or <mask>) in it.")
    if len(text) > MAX_CHARS:
        notices.append(f"Text was {len(text):,} characters; only the first {MAX_CHARS:,} were used.")
        text = text[:MAX_CHARS]
    text = _MASK_SPELLINGS.sub(mask_token, text)
    count = text.count(mask_token)
    if count == 0:
        raise UserError(f"No mask token found: put [MASK] (or <mask>) where the model should guess a word.")
    if count > MAX_MASKS:
        raise UserError(f"{count} masks in one text; at most {MAX_MASKS} are shown. Remove some.")
    return text, notices


@torch.inference_mode()
def fill_mask(model, tokenizer, text: str, top_k: int = 5) -> FillMaskResult:
    if not 1 <= int(top_k) <= MAX_TOP_K:
        raise UserError(f"top-k must be between 1 and {MAX_TOP_K}, got {top_k}.")
    text, notices = normalize(text, tokenizer.mask_token)
    max_len = int(min(tokenizer.model_max_length, 512))
    enc = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_len)
    ids = enc["input_ids"]
    positions = ids == tokenizer.mask_token_id
    if int(positions.sum()) < text.count(tokenizer.mask_token):
        notices.append(f"Text is longer than the model's {max_len} tokens: masks past the end were dropped.")
    if not positions.any():
        raise UserError("Every mask fell past the model's maximum length; shorten the text.")
    device = next(model.parameters()).device
    logits = masked_logits(model, ids.to(device), enc["attention_mask"].to(device), positions.to(device))
    probs = logits.float().softmax(-1)
    top = probs.topk(int(top_k), dim=-1)
    result = FillMaskResult(text=text, notices=notices)
    for row_p, row_i in zip(top.values.tolist(), top.indices.tolist()):
        preds = []
        for p, i in zip(row_p, row_i):
            token = tokenizer.decode([i]).strip()
            preds.append(Prediction(token, int(i), float(p), text.replace(tokenizer.mask_token, token, 1)))
        result.masks.append(preds)
    return result
