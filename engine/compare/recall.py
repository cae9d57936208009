"""Domain-word recall: can the model fill in the words its tokenizer shreds?

The words cut into several pieces (engine.data.shredded, the Dataset tab's list, counted on
the corpus's train split) are the domain vocabulary a general model lacks. Each occurrence of
one in held-out text (the test split, never trained on) is whole-word masked, every piece at
once, and the model's guesses at those positions are scored against the true pieces.

A word's rank is the rank of its WORST piece: a word counts as top-1 only when greedy
filling reproduces every piece, and as top-5 only when every piece is among its position's
five best. A product (or mean) of piece ranks would let one right piece hide a wrong one, and
the product grows with the number of pieces, so longer words would look worse for being long.
The word's log-probability (the sum over its pieces, i.e. the product of their probabilities)
is reported next to it as a smooth measure that still moves when no rank does.

Bounded: at most `max_per_word` occurrences of each word and `max_occurrences` in all, each
scored in a window of `window` tokens around it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from engine.errors import UserError
from engine.mlm_head import masked_logits

NO_SHREDDED = ("The tokenizer cuts no recurring word of this corpus into pieces, so there is no domain word "
               "to recall: every word is already in its vocabulary.")


@dataclass(frozen=True)
class RecallConfig:
    top_words: int = 50  # the shredded words met most often in the train split
    max_occurrences: int = 300  # in all: the bound on the work
    max_per_word: int = 10  # so that one frequent word does not make the whole score
    window: int = 64  # tokens of context around each occurrence
    batch_size: int = 32
    n_docs: int = 2000  # train documents sampled for the word list (the Dataset tab's default)
    seed: int = 0

    def validated(self) -> RecallConfig:
        for name, low, high in (("top_words", 1, 500), ("max_occurrences", 1, 5000), ("max_per_word", 1, 1000),
                                ("window", 8, 512)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise UserError(f"{name.replace('_', ' ').capitalize()} must be a whole number from {low} to "
                                f"{high}, got {value!r}.")
        return self


@dataclass
class Occurrence:
    input_ids: list[int]  # the window, the word's pieces still in place
    start: int  # first piece's index in input_ids
    pieces: list[int]  # the true piece ids
    word: str


def shredded_words(train_texts: list[str], tokenizer, cfg: RecallConfig) -> list[str]:
    from engine.data.shredded import split_words

    found = split_words(train_texts, tokenizer, n_docs=cfg.n_docs, seed=cfg.seed, top=cfg.top_words)
    # Frequent rather than most-pieces: a word must recur in held-out text to be scored at all.
    return list(found.most_frequent["word"])


def find_occurrences(texts: list[str], words: list[str], tokenizer, cfg: RecallConfig) -> list[Occurrence]:
    """Occurrences of `words` in `texts` (as the tokenizer's normalizer and pre-tokenizer see them)."""
    wanted, per_word, out = set(words), dict.fromkeys(words, 0), []
    normalize = tokenizer.backend_tokenizer.normalizer
    for text in texts:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, word_ids = enc["input_ids"], enc.word_ids()
        for first, last in _word_spans(word_ids):
            if last - first < 2:
                continue
            span = text[enc["offset_mapping"][first][0]:enc["offset_mapping"][last - 1][1]]
            word = normalize.normalize_str(span) if normalize is not None else span
            if word in wanted and per_word[word] < cfg.max_per_word:
                per_word[word] += 1
                out.append(_windowed(ids, first, last, word, tokenizer, cfg.window))
                if len(out) >= cfg.max_occurrences:
                    return out
    return out


def _word_spans(word_ids: list[int | None]):
    """(first token, end token) of each word of an encoding."""
    start = 0
    for i in range(1, len(word_ids) + 1):
        if i == len(word_ids) or word_ids[i] != word_ids[start]:
            if word_ids[start] is not None:
                yield start, i
            start = i


def _windowed(ids: list[int], first: int, last: int, word: str, tokenizer, window: int) -> Occurrence:
    """The occurrence centred in at most `window` tokens, with the special tokens around it."""
    half = max(0, (window - 2 - (last - first)) // 2)
    lo, hi = max(0, first - half), min(len(ids), last + half)
    body = [tokenizer.cls_token_id, *ids[lo:hi], tokenizer.sep_token_id]
    return Occurrence(body, first - lo + 1, ids[first:last], word)


@torch.inference_mode()
def score(model, tokenizer, occurrences: list[Occurrence], batch_size: int = 32) -> pd.DataFrame:
    """Per occurrence: the word's rank (its worst piece's) and log-probability (sum over pieces)."""
    device = next(model.parameters()).device
    rows = []
    for b in range(0, len(occurrences), batch_size):
        batch = occurrences[b:b + batch_size]
        width = max(len(o.input_ids) for o in batch)
        ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
        attn = torch.zeros_like(ids)
        positions = torch.zeros_like(ids, dtype=torch.bool)
        truth = []
        for r, o in enumerate(batch):
            ids[r, :len(o.input_ids)] = torch.tensor(o.input_ids)
            attn[r, :len(o.input_ids)] = 1
            ids[r, o.start:o.start + len(o.pieces)] = tokenizer.mask_token_id  # whole-word mask
            positions[r, o.start:o.start + len(o.pieces)] = True
            truth += o.pieces
        logits = masked_logits(model, ids.to(device), attn.to(device), positions.to(device)).float()
        true = torch.tensor(truth, device=logits.device)
        true_logit = logits.gather(1, true[:, None])
        ranks = (logits > true_logit).sum(1) + 1
        logp = logits.log_softmax(-1).gather(1, true[:, None])[:, 0]
        for o, r, lp in zip(batch, ranks.split([len(o.pieces) for o in batch]),
                            logp.split([len(o.pieces) for o in batch])):
            rows.append({"word": o.word, "pieces": len(o.pieces), "rank": int(r.max()), "log_prob": float(lp.sum())})
    return pd.DataFrame(rows, columns=["word", "pieces", "rank", "log_prob"])


def summarize(label: str, scored: pd.DataFrame, head_trained: bool) -> dict:
    return {
        "model": label, "top1": round(float((scored["rank"] <= 1).mean()), 4),
        "top5": round(float((scored["rank"] <= 5).mean()), 4), "mean_rank": round(float(scored["rank"].mean()), 1),
        "median_rank": float(scored["rank"].median()), "mean_log_prob": round(float(scored["log_prob"].mean()), 3),
        "occurrences": len(scored), "words": int(scored["word"].nunique()),
        "note": "" if head_trained else "MLM head untrained until fine-tuned: random guesses",
    }


def word_recall(names: list[str] | None, corpus, base_ref: str | None = None, cfg: RecallConfig | None = None,
                cache=None) -> pd.DataFrame:
    """Top-1 / top-5 recall, mean rank and log-probability of the shredded words, one row per model."""
    from engine.compare.model_cache import shared_cache
    from engine.compare.side_by_side import model_specs, vocab_fingerprint
    from engine.data.corpus import load_corpus

    cfg = (cfg or RecallConfig()).validated()
    specs = model_specs(names, base_ref)
    cache = cache or shared_cache()
    dd = load_corpus(corpus)
    with cache.lock:
        views = cache.get_many([(s.ref, s.label) for s in specs])
        tokenizer = views[0].tokenizer  # compared models share a vocabulary (side_by_side checks it)
        words = shredded_words(dd["train"]["text"], tokenizer, cfg)
        if not words:
            raise UserError(NO_SHREDDED)
        occurrences = find_occurrences(dd["test"]["text"], words, tokenizer, cfg)
        if not occurrences:
            raise UserError(f"None of the {len(words)} shredded words occurs in the held-out (test) text: "
                            "use more documents.")
        rows, vocab = [], vocab_fingerprint(tokenizer)
        for view in views:
            if vocab_fingerprint(view.tokenizer) != vocab:  # the occurrences' token ids mean other words
                rows.append({"model": view.label, "note": "another vocabulary than the first model's: not scored"})
                continue
            with cache.activate(view) as model:
                scored = score(model, view.tokenizer, occurrences, cfg.batch_size)
            rows.append(summarize(view.label, scored, view.info.head_trained))
    frame = pd.DataFrame(rows)
    frame.attrs["words"] = sorted({o.word for o in occurrences})
    return frame
