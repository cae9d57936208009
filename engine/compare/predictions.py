"""Top-k predictions for every mask in a sentence (or a batch of sentences).

One forward pass, the head applied at the mask positions only (engine.mlm_head),
so a request costs less than transformers' fill-mask pipeline on the same model,
which projects every position onto the whole vocabulary. The pipeline also lacks a
batch-of-prompts path with one padded forward, which the prompt list mode needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from engine.errors import UserError
from engine.mlm_head import masked_logits
from engine.numbers import whole
from engine.validation import check, quote

MAX_CHARS = 5_000
MAX_MASKS = 10  # rows of the top-k table / subplots of the bar chart
MAX_TOP_K = 50
MAX_INPUT_CHARS = 1_000_000  # refused above this; cut to MAX_CHARS (with a notice) below it
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
    sequence: str  # the text with this mask filled by `token` (the other masks left as they are)


@dataclass
class FillMaskResult:
    text: str  # the text actually scored, with the model's own mask token
    masks: list[list[Prediction]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


@dataclass
class MaskProbs:
    """Full vocabulary distributions at every scored mask of one text."""

    text: str
    probs: torch.Tensor  # (n_masks, vocab), float32 on CPU
    notices: list[str] = field(default_factory=list)


def normalize(text: str | None, mask_token: str) -> tuple[str, list[str]]:
    """Map `[MASK]`/`<mask>` to the model's mask token; cut very long text with a notice."""
    notices: list[str] = []
    text = check(text or "", "str", "Text", maximum=MAX_INPUT_CHARS).strip()
    if not text:
        raise UserError("Type a sentence with at least one [MASK] (or <mask>) in it.")
    text = _MASK_SPELLINGS.sub(mask_token, text)
    total = text.count(mask_token)
    if total == 0:
        raise UserError("No mask token found: put [MASK] (or <mask>) where the model should guess a word.")
    if len(text) > MAX_CHARS:
        notices.append(f"Text was {len(text):,} characters; only the first {MAX_CHARS:,} were used.")
        text = text[:MAX_CHARS]
        if text.count(mask_token) == 0:
            raise UserError(
                f"All {total} masks lie past the first {MAX_CHARS:,} characters, which is all that is scored: "
                "move a [MASK] nearer the start or shorten the text."
            )
    count = text.count(mask_token)
    if count > MAX_MASKS:
        raise UserError(
            f"{count} masks in one text, but the table shows at most {MAX_MASKS}: remove {count - MAX_MASKS}."
        )
    return text, notices


def check_top_k(top_k) -> int:
    k = whole(check(top_k, "int", "top-k"), "top-k", what=f" between 1 and {MAX_TOP_K}")
    if not 1 <= k <= MAX_TOP_K:
        raise UserError(f"top-k must be between 1 and {MAX_TOP_K}, got {quote(top_k)}.")
    return k


def _max_len(tokenizer) -> int:
    return int(min(tokenizer.model_max_length, 512))


@torch.inference_mode()
def mask_probabilities_batch(model, tokenizer, texts: list[str]) -> list[MaskProbs]:
    """Normalise each text, run all of them in one padded forward, split the rows back."""
    prepared = [normalize(t, tokenizer.mask_token) for t in texts]
    max_len = _max_len(tokenizer)
    enc = tokenizer([t for t, _ in prepared], return_tensors="pt", truncation=True, max_length=max_len, padding=True)
    ids = enc["input_ids"]
    positions = ids == tokenizer.mask_token_id
    counts = positions.sum(dim=1).tolist()
    out: list[MaskProbs] = []
    if sum(counts):
        device = next(model.parameters()).device
        logits = masked_logits(model, ids.to(device), enc["attention_mask"].to(device), positions.to(device))
        rows = logits.float().softmax(-1).cpu().split(counts)
    else:
        rows = [torch.empty(0, 0)] * len(texts)
    for (text, notices), n, probs in zip(prepared, counts, rows):
        if n < text.count(tokenizer.mask_token):
            if n == 0:
                raise UserError(f"Every mask fell past the model's maximum of {max_len} tokens; shorten the text.")
            notices = notices + [f"Text is longer than the model's {max_len} tokens: masks past the end were dropped."]
        out.append(MaskProbs(text, probs, notices))
    return out


def mask_probabilities(model, tokenizer, text: str) -> MaskProbs:
    return mask_probabilities_batch(model, tokenizer, [text])[0]


def fill_sequence(text: str, mask_token: str, index: int, token: str, glued: bool = False) -> str:
    """`text` with its `index`-th mask replaced by `token`; a piece that continues a word (a WordPiece
    ##s, or a byte-level piece without its leading space: `glued`) joins the word before."""
    parts = text.split(mask_token)
    left = mask_token.join(parts[: index + 1])
    right = mask_token.join(parts[index + 1 :])
    if token.startswith("##"):
        return left.rstrip() + token[2:] + right
    if glued:
        return left.rstrip() + token + right
    return left + token + right


def _byte_level(tokenizer) -> bool:
    """GPT-style byte-level BPE (RoBERTa, ModernBERT): a piece that starts a word decodes with its space."""
    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    return type(decoder).__name__ == "ByteLevel"


def top_predictions(tokenizer, scored: MaskProbs, top_k: int) -> FillMaskResult:
    top_k = min(check_top_k(top_k), scored.probs.shape[-1])
    top = scored.probs.topk(top_k, dim=-1)
    result = FillMaskResult(text=scored.text, notices=list(scored.notices))
    byte_level = _byte_level(tokenizer)
    for m, (row_p, row_i) in enumerate(zip(top.values.tolist(), top.indices.tolist())):
        preds = []
        for p, i in zip(row_p, row_i):
            raw = tokenizer.decode([i])
            token = raw.strip()
            glued = byte_level and bool(token) and not raw[:1].isspace()
            sequence = fill_sequence(scored.text, tokenizer.mask_token, m, token, glued)
            preds.append(Prediction(token, int(i), float(p), sequence))
        result.masks.append(preds)
    return result


def fill_mask(model, tokenizer, text: str, top_k: int = 5) -> FillMaskResult:
    top_k = check_top_k(top_k)
    return top_predictions(tokenizer, mask_probabilities(model, tokenizer, text), top_k)


def fill_mask_many(model, tokenizer, texts: list[str], top_k: int = 1) -> list[FillMaskResult]:
    top_k = check_top_k(top_k)
    return [top_predictions(tokenizer, s, top_k) for s in mask_probabilities_batch(model, tokenizer, texts)]


def result_rows(result: FillMaskResult) -> list[dict]:
    """One row per (mask, rank): what the top-k table and the CSV show."""
    return [
        {"mask": m + 1, "rank": r + 1, "token": p.token, "probability": round(p.probability, 4), "sequence": p.sequence}
        for m, preds in enumerate(result.masks)
        for r, p in enumerate(preds)
    ]
