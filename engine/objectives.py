"""The textbook's three pre-training objectives (§3.2) on one text: MLM, CLM and NSP.

Plain values for the Masking tab's objectives panel. Only MLM is what this app trains; CLM and
NSP are shown to explain the difference, never trained. The MLM view is the real collator's output
(engine.masking.preview_text runs DataCollatorForLanguageModeling); CLM and NSP need no model:
CLM's targets are the input shifted by one under a causal mask, NSP's pairs are sentences drawn
from a corpus as BERT drew them (B follows A half the time, else it comes from another document).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import numpy as np

from engine.errors import UserError
from engine.masking import MaskingConfig, MaskPreview, preview_text

MAX_MATRIX_TOKENS = 24  # attention matrices wider than this are unreadable on a page
NSP_PAIRS = 6
IS_NEXT, NOT_NEXT = "IsNext", "NotNext"

LOSSES = {
    "MLM": r"\mathcal{L}_{\text{MLM}} = -\sum_{i \in \text{masked}} \log P(x_i \mid \mathbf{x}_{\setminus i})",
    "CLM": r"\mathcal{L}_{\text{CLM}} = -\sum_{i=1}^{n} \log P(x_i \mid x_1, \ldots, x_{i-1})",
    "NSP": r"\mathcal{L}_{\text{NSP}} = -\log P(y \mid \texttt{[CLS]}\,A\,\texttt{[SEP]}\,B\,\texttt{[SEP]}),"
           r"\quad y \in \{\text{IsNext}, \text{NotNext}\}",
}

# The textbook's "MLM vs CLM" table (§3.2), translated; rows in its order.
COMPARISON = [
    {"feature": "context", "MLM (BERT type)": "bidirectional (both sides)",
     "CLM (GPT type)": "unidirectional (left to right)"},
    {"feature": "strengths", "MLM (BERT type)": "classification, extraction, understanding",
     "CLM (GPT type)": "generation, dialogue, continuation"},
    {"feature": "attention", "MLM (BERT type)": "every token can see every token",
     "CLM (GPT type)": "future tokens masked"},
    {"feature": "training efficiency", "MLM (BERT type)": "learns from all tokens",
     "CLM (GPT type)": "predicts one token at a time"},
    {"feature": "representative models", "MLM (BERT type)": "BERT, RoBERTa", "CLM (GPT type)": "GPT-2, GPT-3, GPT-4"},
]


@dataclass
class ClmStep:
    position: int
    context: list[str]  # what the model may look at: tokens 0..position
    target: str  # the next token it must predict


@dataclass
class NspPair:
    sentence_a: str
    sentence_b: str
    label: str  # IsNext | NotNext
    tokens_a: int  # tokens of each segment in the real pair encoding ([CLS] A [SEP] B [SEP])
    tokens_b: int


@dataclass
class Objectives:
    mlm: MaskPreview  # the collator's output on the text
    clm: list[ClmStep]
    matrix_tokens: list[str]  # the tokens the two attention matrices are drawn over
    bidirectional: np.ndarray  # (n, n) 1 where query row i may attend to key column j (MLM)
    causal: np.ndarray  # (n, n) lower triangle (CLM)

    @property
    def mlm_loss_positions(self) -> list[int]:
        return [t.position for t in self.mlm.tokens if t.label is not None]

    @property
    def positions(self) -> int:
        """Positions that may carry a loss: the text's tokens without [CLS]/[SEP]."""
        return sum(not t.special for t in self.mlm.tokens)


def attention_masks(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The bidirectional (all ones) and the causal (lower-triangular) attention mask over n tokens."""
    full = np.ones((n, n), dtype=np.int8)
    return full, np.tril(full)


def clm_steps(tokens: list[str]) -> list[ClmStep]:
    """Every position predicts the next token from the ones before it (teacher forcing)."""
    return [ClmStep(i, tokens[: i + 1], tokens[i + 1]) for i in range(len(tokens) - 1)]


def objectives(text: str, tokenizer, cfg: MaskingConfig, max_length: int | None = None) -> Objectives:
    """MLM (the collator), CLM and the two attention masks for one text."""
    mlm = preview_text(text, tokenizer, cfg, max_length)
    content = [t.original for t in mlm.tokens if not t.special]
    shown = content[:MAX_MATRIX_TOKENS]
    full, causal = attention_masks(len(shown))
    return Objectives(mlm, clm_steps(content), shown, full, causal)


# ---------------------------------------------------------------- NSP

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Za-z0-9\"'(])")
_MARKUP = re.compile(r"<br\s*/?>|<[^>]+>")


def sentences(text: str) -> list[str]:
    """A document cut into sentences (IMDb reviews carry <br /> line breaks: dropped)."""
    clean = _MARKUP.sub(" ", text or "")
    return [s.strip() for s in _SENTENCE_END.split(clean) if len(s.split()) >= 3]


def nsp_pairs(texts: list[str], tokenizer, n_pairs: int = NSP_PAIRS, seed: int = 0) -> list[NspPair]:
    """Sentence pairs as BERT's NSP drew them: half IsNext (B follows A), half NotNext (B from another document).

    The labels are an exact 50/50 shuffle, so a handful of pairs shows the balance BERT's coin flip has on average.
    """
    rng = random.Random(seed)
    docs = [s for s in (sentences(t) for t in texts) if len(s) >= 2]
    if len(docs) < 2:
        raise UserError("NSP needs at least two documents with two or more sentences each.")
    labels = [IS_NEXT] * (n_pairs - n_pairs // 2) + [NOT_NEXT] * (n_pairs // 2)
    rng.shuffle(labels)
    pairs = []
    for label in labels:
        d = rng.randrange(len(docs))
        i = rng.randrange(len(docs[d]) - 1)
        if label == IS_NEXT:
            b = docs[d][i + 1]
        else:
            other = rng.choice([k for k in range(len(docs)) if k != d])
            b = rng.choice(docs[other])
        pairs.append(_pair(docs[d][i], b, label, tokenizer))
    return pairs


def _pair(a: str, b: str, label: str, tokenizer) -> NspPair:
    enc = tokenizer(a, b, return_token_type_ids=True, truncation=True, max_length=512)
    types = enc.get("token_type_ids") or [0] * len(enc["input_ids"])
    n_b = int(sum(types))
    return NspPair(a, b, label, len(enc["input_ids"]) - n_b, n_b)
