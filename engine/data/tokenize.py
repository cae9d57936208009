"""Tokenizing a list of texts into flat numpy arrays, as fast as the Rust tokenizer allows.

Every document's tokens, [CLS] ... [SEP], go back to back into one int32 array (plus the
special-token mask, and the character offsets only when asked: whole-word masking needs
them, nothing else does, and converting them costs as much Python time as the ids);
chunking is then a reshape (engine.data.corpus.chunk_split). Kept apart from engine.data.corpus, which loads
corpora and caches these arrays on disk.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class TokenizedSplit:
    """One split as flat arrays: every document's tokens, [CLS] ... [SEP], back to back."""

    input_ids: np.ndarray  # int32 (total,)
    offsets: np.ndarray | None  # int32 (total, 2): character span of each token; None until asked for
    special: np.ndarray  # uint8 (total,): 1 for [CLS]/[SEP]/...
    doc_lengths: np.ndarray  # int32 (docs,)
    load_offsets: Callable[[], np.ndarray] | None = field(default=None, repr=False, compare=False)

    @property
    def total(self) -> int:
        return int(self.input_ids.shape[0])

    def offset_array(self) -> np.ndarray | None:
        """The offsets, computed (and kept) on first use when they were not tokenized up front."""
        if self.offsets is None and self.load_offsets is not None:
            self.offsets = self.load_offsets()
        return self.offsets


def tokenize_texts(texts: list[str], tokenizer, progress=None, batch_size: int = 2048, offsets: bool = True,
                   backend=None) -> TokenizedSplit:
    """Encode all texts with the Rust tokenizer (no truncation: long reviews are chunked later).

    Batches of `batch_size` documents are pipelined: the Rust call releases the GIL, so
    a thread encodes batch k+1 (on all cores) while this one copies batch k into numpy;
    `progress(fraction)` is called after each batch. offsets=False uses `encode_batch_fast`
    and leaves `offsets` None; `backend` is an _untruncated() copy to reuse.
    """
    from concurrent.futures import ThreadPoolExecutor

    backend = backend or _untruncated(tokenizer)
    encode = backend.encode_batch if offsets else backend.encode_batch_fast
    trim = offsets and spaces_in_offsets(backend)
    texts = list(texts)
    batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)] or [[]]
    parts = []
    if progress:
        progress(0.0)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(encode, batches[0])
        for k in range(len(batches)):
            encodings = pending.result()
            if k + 1 < len(batches):
                pending = pool.submit(encode, batches[k + 1])
            parts.append(_to_arrays(encodings, offsets))
            if trim:
                trim_leading_spaces(parts[-1].offsets, batches[k], parts[-1].doc_lengths)
            if progress:
                progress((k + 1) / len(batches))
    if len(parts) == 1:
        return parts[0]
    joined = {f: np.concatenate([getattr(p, f) for p in parts]) for f in ("input_ids", "special", "doc_lengths")}
    return TokenizedSplit(offsets=np.concatenate([p.offsets for p in parts]) if offsets else None, **joined)


def _to_arrays(encodings, with_offsets: bool = True) -> TokenizedSplit:
    lengths = np.fromiter((len(e) for e in encodings), dtype=np.int32, count=len(encodings))
    total = int(lengths.sum())
    chain = itertools.chain.from_iterable
    ids = np.fromiter(chain(e.ids for e in encodings), dtype=np.int32, count=total)
    special = np.fromiter(chain(e.special_tokens_mask for e in encodings), dtype=np.uint8, count=total)
    offsets = None
    if with_offsets:
        offsets = np.fromiter(chain(chain(e.offsets for e in encodings)), dtype=np.int32, count=2 * total)
        offsets = offsets.reshape(total, 2)
    return TokenizedSplit(ids, offsets, special, lengths)


def spaces_in_offsets(backend) -> bool:
    """Whether this tokenizer's offsets include the space before a word, as a byte-level BPE
    without offset trimming gives ("Ġfilm" spans " film"; ModernBERT-style tokenizer.json files
    that post-process with a plain template). The collator's whole-word rule needs a gap
    between words, so such offsets would glue a whole chunk into one "word"."""
    encoding = backend.encode("a b", add_special_tokens=False)
    return len(encoding.offsets) >= 2 and encoding.offsets[1][0] == 1


def trim_leading_spaces(offsets: np.ndarray, texts: list[str], doc_lengths: np.ndarray) -> None:
    """Move each token's start past one leading whitespace character of its own text, in place
    (tokens that are nothing but whitespace keep their span). Vectorised: the batch's texts are
    joined into one array of code points and every start is looked up at once."""
    joined = "".join(texts)
    codes = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
    bases = np.repeat(np.cumsum([0] + [len(t) for t in texts[:-1]]), doc_lengths)
    starts, ends = offsets[:, 0], offsets[:, 1]
    where = np.clip(bases + starts, 0, max(len(codes) - 1, 0))
    spaces = np.isin(codes[where], _WHITESPACE) if len(codes) else np.zeros(len(starts), bool)
    fix = spaces & (ends - starts > 1)
    offsets[fix, 0] += 1


_WHITESPACE = np.array([ord(c) for c in " \t\n\r\x0b\x0c\u00a0\u3000"], dtype=np.uint32)


def _untruncated(tokenizer):
    """The Rust tokenizer with truncation and padding off (some tokenizer.json files
    ship them on, e.g. MiniLM's truncates at 128); a copy, so the caller's is untouched."""
    import copy

    backend = copy.deepcopy(tokenizer.backend_tokenizer)
    backend.no_truncation()
    backend.no_padding()
    return backend


def word_ids(offsets: np.ndarray, special: np.ndarray) -> np.ndarray:
    """Word index per token (-1 for special tokens), by the rule the collator uses.

    A token starts a new word when it does not touch the previous token's end or
    follows a special token; this is what DataCollatorForLanguageModeling's
    whole-word masking derives from offset_mapping.
    """
    starts, ends = offsets[..., 0], offsets[..., 1]
    prev_end = np.roll(ends, 1, axis=-1)
    prev_special = np.roll(special, 1, axis=-1)
    prev_end[..., 0] = -1
    prev_special[..., 0] = 0
    is_special = special.astype(bool)
    new_word = ~is_special & ((starts != prev_end) | (prev_special == 1))
    ids = np.cumsum(new_word, axis=-1) - 1
    return np.where(is_special, -1, ids).astype(np.int32)
