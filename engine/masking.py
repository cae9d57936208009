"""Masking through transformers' DataCollatorForLanguageModeling.

The collator already implements token-level 80/10/10 masking and whole-word masking
(from offset_mapping) with its own seeded generator; we only configure it. The
preview and the batch statistic below run the collator itself and read its output
back (which positions it selected, what it put there), so what the Masking tab
shows is exactly what training feeds the model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
from transformers import DataCollatorForLanguageModeling

from engine.data.tokenize import spaces_in_offsets, trim_leading_spaces
from engine.errors import UserError
from engine.numbers import number, whole
from engine.validation import SEED_MAX, check, quote

Kind = Literal["unmasked", "mask", "random", "kept"]
KINDS: tuple[Kind, ...] = ("unmasked", "mask", "random", "kept")
KIND_NAMES: dict[Kind, str] = {
    "unmasked": "unmasked",
    "mask": "[MASK]",
    "random": "random replacement",
    "kept": "kept original",
}
IGNORE = -100  # the collator's label for "not selected, no loss here"
MAX_PREVIEW_TOKENS = 512
WHOLE_WORD_NOTICE = (
    "Whole-word masking in transformers always shows [MASK] for a selected word "
    "(mask_replace_prob is forced to 1): the random/keep shares do not apply."
)
DEFAULT_TEXT = (
    "Bromwell High is a cartoon comedy. It ran at the same time as some other programs about "
    "school life, such as \"Teachers\". My 35 years in the teaching profession lead me to believe "
    "that Bromwell High's satire is much closer to reality than is \"Teachers\"."
)


def make_collator(
    tokenizer,
    mlm_probability: float = 0.15,
    whole_word_mask: bool = False,
    mask_replace_prob: float = 0.8,
    random_replace_prob: float = 0.1,
    seed: int | None = None,
) -> DataCollatorForLanguageModeling:
    """The collator for these settings. Rows passed to it need input_ids and
    special_tokens_mask, plus offset_mapping for whole-word masking."""
    import warnings

    with warnings.catch_warnings():
        # whole-word masking in transformers always uses [MASK] (no random/keep); the UI says so.
        warnings.simplefilter("ignore", UserWarning)
        return DataCollatorForLanguageModeling(
            tokenizer=tokenizer,
            mlm=True,
            whole_word_mask=whole_word_mask,
            mlm_probability=mlm_probability,
            mask_replace_prob=mask_replace_prob,
            random_replace_prob=random_replace_prob,
            seed=seed,
        )


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class MaskingConfig:
    """What the collator is asked to do. The keep share is the rest: 1 - mask - random."""

    whole_word_mask: bool = False
    mlm_probability: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    seed: int = 42

    @classmethod
    def from_inputs(cls, strategy, mlm_probability, mask_replace_prob, random_replace_prob, seed) -> MaskingConfig:
        """Build from what a user typed (strings, floats, None), with a clear message for bad values."""
        return cls(
            whole_word_mask=parse_strategy(strategy),
            mlm_probability=_fraction("Masking probability", mlm_probability),
            mask_replace_prob=_fraction("The [MASK] share", mask_replace_prob),
            random_replace_prob=_fraction("The random share", random_replace_prob),
            seed=_seed(seed),
        )

    def __post_init__(self) -> None:
        self.validated()  # a MaskingConfig that exists is one the collator accepts

    def validated(self) -> MaskingConfig:
        object.__setattr__(self, "whole_word_mask", check(self.whole_word_mask, "bool", "Whole-word masking"))
        object.__setattr__(self, "seed", _seed(self.seed))
        for name, label in (("mlm_probability", "Masking probability"), ("mask_replace_prob", "The [MASK] share"),
                            ("random_replace_prob", "The random share")):
            object.__setattr__(self, name, _fraction(label, getattr(self, name)))
        p, m, r = self.mlm_probability, self.mask_replace_prob, self.random_replace_prob
        if not 0 < p < 1:
            raise UserError(f"Masking probability must be above 0 and below 1 (e.g. 0.15), got {p}.")
        for name, share in (("[MASK]", m), ("random", r)):
            if not 0 <= share <= 1:
                raise UserError(f"The {name} share must be between 0 and 1, got {share}.")
        if m + r > 1 + 1e-9:
            raise UserError(
                f"The [MASK] share ({m:g}) plus the random share ({r:g}) is {m + r:g}, above 1: lower one of "
                f"them. The rest, 1 - [MASK] - random, is the share of selected tokens kept unchanged."
            )
        if m + r > 1:  # 0.7 + 0.3 style float noise; the collator's own check is strict
            object.__setattr__(self, "random_replace_prob", 1.0 - m)
        return self

    @property
    def keep_prob(self) -> float:
        return max(0.0, round(1.0 - self.mask_replace_prob - self.random_replace_prob, 12))  # float noise

    def effective_split(self) -> dict[Kind, float]:
        """The [MASK]/random/kept shares the collator really applies to selected tokens."""
        if self.whole_word_mask:
            return {"mask": 1.0, "random": 0.0, "kept": 0.0}
        return {"mask": self.mask_replace_prob, "random": self.random_replace_prob, "kept": self.keep_prob}

    def notices(self) -> list[str]:
        if self.whole_word_mask and self.mask_replace_prob < 1:
            return [WHOLE_WORD_NOTICE]
        return []

    def collator(self, tokenizer):
        """A fresh collator: its generator is seeded on first use, so a new one per preview
        makes the same seed give the same masks every time."""
        return make_collator(
            tokenizer, self.mlm_probability, self.whole_word_mask,
            self.mask_replace_prob, self.random_replace_prob, self.seed,
        )


def parse_strategy(strategy) -> bool:
    """'token' or 'whole_word' (hyphens, spaces and case are forgiven) -> whole_word_mask."""
    value = check(strategy or "token", "str", "Masking strategy", maximum=40)
    value = value.strip().lower().replace("-", "_").replace(" ", "_")
    if value in ("token", "token_level"):
        return False
    if value in ("whole_word", "word"):
        return True
    raise UserError(f"Masking strategy must be 'token' or 'whole_word', got {quote(strategy)}.")


def _fraction(name: str, value) -> float:
    if isinstance(value, bool):
        raise UserError(f"{name} must be a number between 0 and 1, got {value!r}.")
    return number(value, name, what=" between 0 and 1")  # the range: MaskingConfig.validated()


def _seed(value) -> int:
    """0..2**32-1: what NumPy and PyTorch accept as a seed."""
    seed = whole(check(value, "int", "Seed"), "Seed", minimum=0)
    if seed > SEED_MAX:
        raise UserError(f"Seed must be at most {SEED_MAX:,} (what NumPy and PyTorch accept), got {quote(value)}.")
    return seed


# ---------------------------------------------------------------- running the collator


def mask_rows(rows: list[dict], tokenizer, cfg: MaskingConfig, collator=None) -> tuple[np.ndarray, np.ndarray]:
    """(shown input_ids, labels) for equal-length rows, straight from one collator call."""
    batch = (collator or cfg.collator(tokenizer))(rows)
    return batch["input_ids"].numpy(), batch["labels"].numpy()


def classify(original: np.ndarray, shown: np.ndarray, labels: np.ndarray, mask_id: int) -> np.ndarray:
    """Index into KINDS for every position, read back from the collator's output.

    The collator does not report which branch it took, only the result: a random draw
    that happens to equal the original token (about 1 in the vocabulary size) is
    indistinguishable from "kept", and one that draws the mask id from "[MASK]"; we count
    them that way, as the model sees them.
    """
    selected = labels != IGNORE
    kinds = np.zeros(original.shape, dtype=np.int8)  # unmasked
    kinds[selected & (shown == mask_id)] = KINDS.index("mask")
    kinds[selected & (shown != mask_id) & (shown != original)] = KINDS.index("random")
    kinds[selected & (shown != mask_id) & (shown == original)] = KINDS.index("kept")
    return kinds


# ---------------------------------------------------------------- one example


@dataclass
class TokenView:
    position: int
    original: str  # the token as the tokenizer produced it
    shown: str  # what the model receives at this position
    kind: Kind
    label: str | None  # the token the model must predict here, None when not selected
    special: bool  # [CLS]/[SEP]/...: never selected


@dataclass
class MaskPreview:
    tokens: list[TokenView]
    counts: dict[Kind, int]
    eligible: int  # tokens that may be selected (not special)
    selected: int
    realised_rate: float  # selected / eligible
    config: MaskingConfig
    source: str
    notices: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["expected"] = {"rate": self.config.mlm_probability, **self.config.effective_split()}
        return out


def encode_text(text: str | None, tokenizer, max_length: int | None = None) -> tuple[dict, list[str]]:
    """One row for the collator (input_ids, special_tokens_mask, offset_mapping), and notices."""
    text = (text or "").strip()
    if not text:
        raise UserError("Type a text to mask (or pick a chunk from the corpus).")
    limit = max_length or min(int(tokenizer.model_max_length), MAX_PREVIEW_TOKENS)
    enc = tokenizer(
        text, truncation=True, max_length=limit,
        return_offsets_mapping=True, return_special_tokens_mask=True,
    )
    row = {k: list(enc[k]) for k in ("input_ids", "special_tokens_mask", "offset_mapping")}
    if spaces_in_offsets(tokenizer.backend_tokenizer):  # as training does (engine.data.tokenize)
        spans = np.asarray(row["offset_mapping"], dtype=np.int64).reshape(-1, 2)
        trim_leading_spaces(spans, [text], np.array([len(spans)]))
        row["offset_mapping"] = [tuple(map(int, pair)) for pair in spans]
    notices = []
    content_ends = [end for (_, end), sp in zip(row["offset_mapping"], row["special_tokens_mask"]) if not sp]
    if not content_ends:
        raise UserError("The text has no tokens this tokenizer knows: type some words.")
    # Truncation is detected from the offsets rather than by tokenizing twice.
    if content_ends[-1] < len(text.rstrip()):
        notices.append(
            f"The text is longer than the model's maximum of {limit} tokens: only the first "
            f"{content_ends[-1]:,} of {len(text):,} characters were tokenized and masked."
        )
    return row, notices


def preview_rows(row: dict, tokenizer, cfg: MaskingConfig, source: str, notices: list[str]) -> MaskPreview:
    """Mask one row with the collator and describe every position."""
    original = np.asarray(row["input_ids"], dtype=np.int64)
    shown, labels = mask_rows([row], tokenizer, cfg)
    shown, labels = shown[0], labels[0]
    kinds = classify(original, shown, labels, tokenizer.mask_token_id)
    special = np.asarray(row["special_tokens_mask"], dtype=bool)
    orig_tokens = tokenizer.convert_ids_to_tokens(original.tolist())
    shown_tokens = tokenizer.convert_ids_to_tokens(shown.tolist())
    tokens = [
        TokenView(i, o, s, KINDS[k], o if lab != IGNORE else None, bool(sp))
        for i, (o, s, k, lab, sp) in enumerate(zip(orig_tokens, shown_tokens, kinds, labels, special))
    ]
    counts = {kind: int((kinds == i).sum()) for i, kind in enumerate(KINDS)}
    eligible = int((~special).sum())
    selected = int((labels != IGNORE).sum())
    notices = notices + cfg.notices()
    if selected == 0:
        notices.append("No token was selected this time: re-roll the seed or raise the probability.")
    rate = selected / eligible if eligible else 0.0
    return MaskPreview(tokens, counts, eligible, selected, rate, cfg, source, notices)


def preview_text(text: str | None, tokenizer, cfg: MaskingConfig, max_length: int | None = None) -> MaskPreview:
    row, notices = encode_text(text, tokenizer, max_length)
    return preview_rows(row, tokenizer, cfg, "your text", notices)


def chunk_row(chunks: dict[str, np.ndarray], index: int, keys=("input_ids", "special_tokens_mask",
                                                                 "offset_mapping")) -> dict:
    """Row `index` of a split from engine.data.corpus.prepare(...).chunks[split], as the collator wants it
    (only `keys`: offsets cost a tokenization the first time)."""
    total = int(chunks["input_ids"].shape[0])
    i = whole(index, "Chunk number")
    if not 0 <= i < total:
        raise UserError(f"Chunk number {i} is out of range: this split has chunks 0 to {total - 1:,}.")
    return {k: np.asarray(chunks[k][i]).tolist() for k in keys}


def preview_chunk(chunks: dict[str, np.ndarray], index: int, tokenizer, cfg: MaskingConfig) -> MaskPreview:
    row = chunk_row(chunks, index)
    return preview_rows(row, tokenizer, cfg, f"chunk {int(index)}", [])


# ---------------------------------------------------------------- many chunks


@dataclass
class BatchStats:
    """Realised rates over many chunks against the settings, with the sampling noise to expect."""

    chunks: int
    eligible: int  # non-special tokens
    words: int  # selection units under whole-word masking
    selected: int
    counts: dict[Kind, int]
    config: MaskingConfig
    notices: list[str] = field(default_factory=list)

    def rows(self) -> list[dict]:
        """One row per quantity: setting, realised value and one standard error (all in %)."""
        p = self.config.mlm_probability
        # Under whole-word masking the collator draws once per word, so words are the trials.
        trials = self.words if self.config.whole_word_mask else self.eligible
        out = [_row("selected / eligible tokens", p, self.selected / max(self.eligible, 1), trials)]
        for kind, share in self.config.effective_split().items():
            realised = self.counts[kind] / max(self.selected, 1)
            out.append(_row(f"{KIND_NAMES[kind]} / selected", share, realised, self.selected))
        return out

    def to_dict(self) -> dict:
        return {**asdict(self), "rows": self.rows()}


def _row(quantity: str, expected: float, realised: float, trials: int) -> dict:
    se = math.sqrt(expected * (1 - expected) / max(trials, 1))
    return {
        "quantity": quantity,
        "setting %": round(100 * expected, 2),
        "realised %": round(100 * realised, 2),
        "difference (points)": round(100 * (realised - expected), 2),
        "typical noise ±1 SE (points)": round(100 * se, 2),
    }


NOISE_NOTE = (
    "Each token (each word under whole-word masking) is selected independently with the "
    "masking probability, and each selected token independently gets [MASK], a random token or "
    "stays as it is. So the realised shares wander around the settings by about one standard error "
    "(SE = sqrt(q(1-q)/n) for a share q over n draws); differences within 2-3 SE are sampling noise, "
    "and they shrink as more chunks are masked."
)


def batch_statistics(
    chunks: dict[str, np.ndarray], tokenizer, cfg: MaskingConfig, n_chunks: int = 1000, batch_size: int | None = None
) -> BatchStats:
    """Mask up to `n_chunks` chunks (a seeded sample) with one collator and count what it did."""
    from engine.data.corpus import downsample

    total = int(chunks["input_ids"].shape[0])
    if total == 0:
        raise UserError("The corpus has no chunks to mask.")
    picked = downsample(total, n_chunks, cfg.seed)
    width = int(chunks["input_ids"].shape[1])
    # Whole-word masking builds a (batch, len, len) matrix: keep it near 32M entries.
    step = batch_size or max(1, min(len(picked), 32_000_000 // (width * width)))
    collator = cfg.collator(tokenizer)  # one generator across batches, as in a training epoch
    counts = np.zeros(len(KINDS), dtype=np.int64)
    eligible = words = selected = 0
    for start in range(0, len(picked), step):
        idx = picked[start:start + step]
        rows = [{k: chunks[k][i].tolist() for k in ("input_ids", "special_tokens_mask", "offset_mapping")} for i in idx]
        shown, labels = mask_rows(rows, tokenizer, cfg, collator)
        original = np.asarray(chunks["input_ids"][idx], dtype=np.int64)
        kinds = classify(original, shown, labels, tokenizer.mask_token_id)
        counts += np.bincount(kinds.ravel(), minlength=len(KINDS))
        special = np.asarray(chunks["special_tokens_mask"][idx]).astype(bool)
        eligible += int((~special).sum())
        selected += int((labels != IGNORE).sum())
        words += _word_count(chunks, idx)
    notices = cfg.notices()
    if len(picked) < n_chunks:
        notices.append(f"The corpus has only {len(picked):,} chunks, so all of them were masked.")
    return BatchStats(len(picked), eligible, words, selected, dict(zip(KINDS, counts.tolist())), cfg, notices)


def _word_count(chunks: dict[str, np.ndarray], idx: np.ndarray) -> int:
    """Words per chunk by the collator's own rule (engine.data.corpus.word_ids mirrors it)."""
    if "word_ids" in chunks:
        ids = np.asarray(chunks["word_ids"][idx])
    else:
        from engine.data.corpus import word_ids

        ids = word_ids(np.asarray(chunks["offset_mapping"][idx]), np.asarray(chunks["special_tokens_mask"][idx]))
    return int((ids.max(axis=1) + 1).clip(min=0).sum())
