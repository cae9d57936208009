"""Pinned prompts: a few fill-mask sentences whose top-3 guesses are recorded at every evaluation.

Perplexity says the model got better; the pinned prompts show how ("the film was [MASK]"
moving from "the" to "temper" to "boring"). Each evaluation appends one metrics row
{"kind": "prompts", "step", "prompts": [{"prompt", "top": [[token, p], ...]}]} through RunFolder.

The mask spellings are engine.compare.predictions's ([MASK] or <mask>), repeated here because
training sits below compare in the engine's layers (tests/test_layout.py).
"""

from __future__ import annotations

import re

import torch

from engine.errors import UserError
from engine.mlm_head import masked_logits
from engine.validation import quote

MAX_PROMPTS = 5
MAX_PROMPT_CHARS = 200  # one sentence: a pinned prompt is a probe, not a document
TOP_K = 3
_MASK_SPELLINGS = re.compile(r"\[mask\]|<mask>", re.IGNORECASE)


def split_prompts(value) -> list[str]:
    """The form's (and the CLI's) text, one prompt per line, as a list; a list is kept as it is."""
    if isinstance(value, str):
        return [line.strip() for line in value.splitlines() if line.strip()]
    return value


def check_prompts(value: list[str], label: str = "Pinned prompts") -> list[str]:
    """At most MAX_PROMPTS prompts, each short and with exactly one [MASK] or <mask>."""
    prompts = [p.strip() for p in value if p.strip()]
    if len(prompts) > MAX_PROMPTS:
        raise UserError(f"{label}: at most {MAX_PROMPTS} prompts, got {len(prompts)}.")
    for p in prompts:
        if len(p) > MAX_PROMPT_CHARS:
            raise UserError(f"{label}: each prompt has at most {MAX_PROMPT_CHARS} characters, got {len(p)}.")
        n = len(_MASK_SPELLINGS.findall(p))
        if n != 1:
            raise UserError(f"{label}: each prompt needs exactly one [MASK] (or <mask>), {quote(p)} has {n}.")
    return prompts


@torch.inference_mode()
def top_guesses(model, tokenizer, prompts: list[str], k: int = TOP_K) -> list[dict]:
    """[{"prompt", "top": [[token, p], ...]}] for each prompt, from one padded forward pass."""
    if not prompts:
        return []
    texts = [_MASK_SPELLINGS.sub(tokenizer.mask_token, p) for p in prompts]
    enc = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=128)
    positions = enc["input_ids"] == tokenizer.mask_token_id
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        logits = masked_logits(model, enc["input_ids"].to(device), enc["attention_mask"].to(device),
                               positions.to(device))
    finally:
        model.train(was_training)
    top = logits.float().softmax(-1).topk(k, dim=-1)
    return [{"prompt": p, "top": [[tokenizer.decode([int(i)]).strip(), round(float(q), 4)]
                                  for q, i in zip(vals.tolist(), ids.tolist())]}
            for p, vals, ids in zip(prompts, top.values, top.indices)]
