"""Stored corpora: a user's analysed upload or Hub dataset, kept server-side under an id.

The id is derived from the content and the text/label column choice, so uploading the same
file with the same columns again gives the same id (and no second copy). What is kept is the
normalised corpus (a 'text' column and, when chosen, 'label') as Parquet written by us, plus a
meta.json; the worker reads only that, never a path taken from a request. The bundled IMDb and
Rotten Tomatoes are listed the same way, as read-only entries with fixed ids.

Where: MLM_CORPORA_DIR, else /data/corpora when /data is a writable mount (a Space's storage
bucket), else ./corpora. Limits: MLM_MAX_CORPORA stored corpora (the least recently used one
that no run refers to is removed first). A corpus a run refers to is never removed, so that
run's Compare and resume keep working.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.errors import UserError
from engine.run_folder import corpus_ids_in_use, write_json_atomic

BUNDLED = {
    "imdb": ("IMDb reviews (bundled)", 25_000),
    "rotten_tomatoes": ("Rotten Tomatoes snippets (bundled)", 8_530),
}
DEFAULT_MAX_CORPORA = 50
NAME_MAX = 120
_ID = re.compile(r"^[0-9a-f]{16}$")


@dataclass
class StoredCorpus:
    """One row of the corpus picker and of `/list_corpora`."""

    corpus_id: str
    name: str
    rows: int
    text_column: str
    label_column: str  # "" when the corpus has no labels
    columns: list[str]
    created: float
    origin: str  # "bundled" | "upload" | "hub"
    last_used: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def corpora_dir() -> Path:
    explicit = os.environ.get("MLM_CORPORA_DIR")
    if explicit:
        root = Path(explicit)
    elif os.path.isdir("/data") and os.access("/data", os.W_OK):
        root = Path("/data/corpora")
    else:
        root = Path("corpora")
    return root.resolve()


def max_corpora() -> int:
    raw = os.environ.get("MLM_MAX_CORPORA", "")
    try:
        return max(1, int(raw)) if raw.strip() else DEFAULT_MAX_CORPORA
    except ValueError:
        return DEFAULT_MAX_CORPORA


def clean_name(name: str, fallback: str = "corpus") -> str:
    """A display name: printable characters only, one line, at most NAME_MAX characters.

    HTML is kept as text here and escaped where it is shown (the UI renders it as text).
    """
    text = "".join(" " if unicodedata.category(c)[0] in "CZ" and c != " " else c for c in str(name or ""))
    text = " ".join(text.split())[:NAME_MAX].strip()
    return text or fallback


def check_id(corpus_id) -> str:
    """A corpus id from a request: a bundled name or 16 hex digits, never a path."""
    if not isinstance(corpus_id, str):
        raise UserError("A corpus id is a string: pick a corpus from the list (`/list_corpora`).")
    cid = corpus_id.strip()
    if cid in BUNDLED or _ID.match(cid):
        return cid
    shown = cid if len(cid) <= 40 else cid[:40] + "…"
    raise UserError(f"{shown!r} is not a corpus id: pick one from the corpus list (`/list_corpora`).")


def _folder(corpus_id: str) -> Path:
    return corpora_dir() / corpus_id


def content_id(digest: str, text_column: str, label_column: str) -> str:
    key = json.dumps([digest, text_column, label_column or ""])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- adding


def store_dataset(splits, *, digest: str, name: str, text_column: str, label_column: str, origin: str,
                  columns: list[str]) -> StoredCorpus:
    """Keep normalised splits ({'train': Dataset[, 'test': Dataset]}, columns 'text' [+ 'label'])."""
    has_label = all("label" in ds.column_names for ds in splits.values())
    label_column = label_column if has_label else ""
    cid = content_id(digest, text_column, label_column)
    folder = _folder(cid)
    if (folder / "meta.json").exists():
        return touch(cid)  # the same content and columns: one copy, and the user's name for it stays
    _make_room()
    tmp = corpora_dir() / f".{cid}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        for split, ds in splits.items():
            ds.to_parquet(str(tmp / f"{split}.parquet"))
        now = time.time()
        rows = sum(len(ds) for ds in splits.values())
        meta = StoredCorpus(cid, clean_name(name), rows, text_column, label_column, list(columns), now, origin, now)
        write_json_atomic(tmp / "meta.json", meta.as_dict())
        os.replace(tmp, folder)  # appears whole or not at all
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(_disk_message(exc)) from None
    return meta


def store_upload(path: str, text_column: str = "", label_column: str = "label", name: str = "") -> StoredCorpus:
    """Read an uploaded file (engine.data.uploads) and keep it as a stored corpus."""
    from engine.data.uploads import describe_upload, read_upload

    info = describe_upload(path)  # refuses a file over MLM_MAX_UPLOAD_MB before reading it
    column = (text_column or "").strip() or info.default
    ds = read_upload(path, column, label_column)
    return store_dataset({"train": ds}, digest=file_digest(path), name=name or info.name, text_column=column,
                         label_column=label_column, origin="upload",
                         columns=info.columns + ([label_column] if "label" in ds.column_names else []))


def store_hub(splits, hub_id: str, hub_config: str, text_column: str, label_column: str) -> StoredCorpus:
    """Keep a Hub dataset's normalised splits (engine.data.corpus loads them) as a stored corpus."""
    digest = json.dumps([hub_id, hub_config, sorted((k, v._fingerprint) for k, v in splits.items())])
    name = hub_id + (f" ({hub_config})" if hub_config else "")
    return store_dataset(dict(splits), digest=digest, name=name, text_column=text_column,
                         label_column=label_column, origin="hub", columns=[text_column, label_column])


def _disk_message(exc: OSError) -> str:
    import errno

    if exc.errno == errno.ENOSPC:
        return "The corpus folder is full: free space or set MLM_CORPORA_DIR to a bigger disk."
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "The corpus folder is read-only: set MLM_CORPORA_DIR to a writable folder."
    return f"Could not store the corpus ({exc.strerror or 'disk error'})."


def _make_room() -> None:
    """Remove least recently used corpora that no run refers to until one more fits."""
    stored = [c for c in list_corpora() if c.origin != "bundled"]
    excess = len(stored) + 1 - max_corpora()
    if excess <= 0:
        return
    pinned = corpus_ids_in_use()
    removable = sorted((c for c in stored if c.corpus_id not in pinned), key=lambda c: c.last_used)
    if len(removable) < excess:
        raise UserError(
            f"The corpus store is full ({max_corpora()} corpora, MLM_MAX_CORPORA) and every stored corpus is "
            "used by a run: remove a run or raise MLM_MAX_CORPORA."
        )
    for c in removable[:excess]:
        shutil.rmtree(_folder(c.corpus_id), ignore_errors=True)


# ---------------------------------------------------------------- reading


def _bundled(cid: str) -> StoredCorpus:
    name, rows = BUNDLED[cid]
    return StoredCorpus(cid, name, rows, "text", "label", ["text", "label"], 0.0, "bundled")


def _read_meta(folder: Path) -> StoredCorpus | None:
    try:
        meta = json.loads((folder / "meta.json").read_text())
        return StoredCorpus(**{k: meta[k] for k in StoredCorpus.__dataclass_fields__ if k in meta})
    except (OSError, ValueError, TypeError):
        return None  # half-written or foreign folder: not listed


def list_corpora() -> list[StoredCorpus]:
    """Bundled corpora first, then stored ones, most recently used first."""
    root = corpora_dir()
    stored = []
    if root.is_dir():
        for p in root.iterdir():
            if _ID.match(p.name) and not p.is_symlink() and (meta := _read_meta(p)):
                stored.append(meta)
    stored.sort(key=lambda c: c.last_used, reverse=True)
    return [_bundled(c) for c in BUNDLED] + stored


def get(corpus_id) -> StoredCorpus:
    cid = check_id(corpus_id)
    if cid in BUNDLED:
        return _bundled(cid)
    folder = _folder(cid)
    meta = _read_meta(folder) if not folder.is_symlink() else None
    if meta is None:
        raise UserError(f"No stored corpus {cid!r} on this server: analyse the file again on the Dataset tab.")
    return meta


def load(corpus_id: str):
    """The stored corpus as a datasets.DatasetDict: 'train' (and 'test' when its source had one)."""
    from datasets import Dataset, DatasetDict

    meta = get(corpus_id)
    if meta.origin == "bundled":
        raise UserError(f"{meta.corpus_id!r} is bundled: load it with CorpusConfig(source={meta.corpus_id!r}).")
    folder = _folder(meta.corpus_id)
    try:
        return DatasetDict({split: Dataset.from_parquet(str(folder / f"{split}.parquet"), keep_in_memory=True)
                            for split in ("train", "test") if (folder / f"{split}.parquet").is_file()})
    except (OSError, ValueError) as exc:
        raise UserError(f"Stored corpus {meta.name!r} cannot be read ({type(exc).__name__}).") from None


def _update_meta(corpus_id: str, **changes) -> StoredCorpus:
    meta = get(corpus_id)
    if meta.origin == "bundled":
        return meta
    for k, v in changes.items():
        setattr(meta, k, v)
    try:
        write_json_atomic(_folder(meta.corpus_id) / "meta.json", meta.as_dict())
    except OSError:
        pass  # a read-only store still serves its corpora; only the name/last-used is not saved
    return meta


def touch(corpus_id: str) -> StoredCorpus:
    return _update_meta(corpus_id, last_used=time.time())


def rename(corpus_id: str, name: str) -> StoredCorpus:
    meta = get(corpus_id)
    if meta.origin == "bundled":
        raise UserError(f"{meta.name!r} is bundled with the app and keeps its name: rename a stored corpus.")
    return _update_meta(corpus_id, name=clean_name(name, meta.name))


def remove(corpus_id: str) -> None:
    """Delete a stored corpus unless a run refers to it."""
    meta = get(corpus_id)
    if meta.origin == "bundled":
        raise UserError("The bundled corpora cannot be removed.")
    if meta.corpus_id in corpus_ids_in_use():
        raise UserError(f"{meta.name!r} is used by a run: it stays so that run can be compared and resumed.")
    shutil.rmtree(_folder(meta.corpus_id), ignore_errors=True)
