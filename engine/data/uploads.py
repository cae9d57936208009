"""Read a user's uploaded corpus: CSV/TSV, JSON, JSONL, Parquet or plain text.

`read_upload` returns a datasets.Dataset with a 'text' column (and 'label' when the
file has the named label column); `describe_upload` / `upload_columns` feed the
text-column picker. Every way a file can be unusable ends in a UserError that says
what to change.

Decisions (also shown to the user):
- Text that is not UTF-8 is read as Windows-1252 (a superset of Latin-1 for the
  printable range; Latin-1 when cp1252 cannot decode it) and the notice says so,
  rather than refusing the file: most such files are old Western-European exports.
- A .txt file is split into documents at blank lines (paragraphs); a file with no
  blank line at all has one document per non-empty line. The notice says which.
"""

from __future__ import annotations

import codecs
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import UserError
from engine.numbers import env_number

TABLE_FORMATS = {".csv": "CSV", ".tsv": "TSV", ".json": "JSON", ".jsonl": "JSON Lines", ".ndjson": "JSON Lines",
                 ".parquet": "Parquet"}
TEXT_FORMATS = {".txt": "text"}
SUPPORTED = {**TABLE_FORMATS, **TEXT_FORMATS}
_SNIFF_BYTES = 1 << 16
_PARQUET_MAGIC = b"PAR1"
# Bounds on the work one upload costs the web process (a 9.9 MB CSV of 1,000,000 columns once took
# it ~3 minutes and 3.6 GiB). Checked before the whole file is parsed; the message names the limit.
DEFAULT_LABEL = "label"  # the label column assumed when none is picked; it may be absent
MAX_UPLOAD_MB = env_number("MLM_MAX_UPLOAD_MB", 200, minimum=1)  # also Gradio's launch(max_file_size=)
MAX_COLUMNS = env_number("MLM_MAX_UPLOAD_COLUMNS", 1_000, minimum=1)
MAX_ROWS = env_number("MLM_MAX_UPLOAD_ROWS", 2_000_000, minimum=1)


def limits_text() -> str:
    """The upload limits in words, for the UI."""
    return (f"Uploads: at most {MAX_UPLOAD_MB:,} MB, {MAX_COLUMNS:,} columns and {MAX_ROWS:,} rows "
            f"(MLM_MAX_UPLOAD_MB, MLM_MAX_UPLOAD_COLUMNS, MLM_MAX_UPLOAD_ROWS).")


@dataclass
class UploadInfo:
    """What the column picker needs to know about a file."""

    name: str
    kind: str  # "CSV", "JSON", "Parquet", "text", ...
    rows: int
    columns: list[str]  # text-like columns, best first
    default: str  # the column picked unless the user says otherwise
    notices: list[str] = field(default_factory=list)  # e.g. the encoding it was read with


def read_upload(path: str, text_column: str = "text", label_column: str = "label"):
    """The file as a datasets.Dataset with 'text' (and 'label' when `label_column` exists).

    An empty `text_column` means the default pick (see `describe_upload`). Rows with
    an empty text are dropped. The notices go to `Dataset.info.description`.
    """
    from datasets import Dataset, DatasetInfo

    frame, info = _read(path)
    column = (text_column or "").strip() or info.default
    if column not in frame.columns:
        raise UserError(
            f"{info.name} has no column {column!r}. Its text columns are: {', '.join(info.columns)}."
        )
    if column not in info.columns:
        raise UserError(f"Column {column!r} of {info.name} holds no text. Pick one of: {', '.join(info.columns)}.")
    if label_column and label_column not in frame.columns and label_column != DEFAULT_LABEL:
        # the default "label" may be absent (an MLM corpus needs none); a column picked by name may not
        raise UserError(f"{info.name} has no column {label_column!r} for labels. Its columns are: "
                        f"{', '.join(map(str, frame.columns))} (or leave the label column empty).")
    keep = {column: "text"}
    if label_column and label_column in frame.columns and label_column != column:
        keep[label_column] = "label"
    frame = frame[list(keep)].rename(columns=keep)
    frame = frame[frame["text"].map(lambda t: isinstance(t, str) and t.strip() != "")].reset_index(drop=True)
    if frame.empty:
        raise UserError(f"Column {column!r} of {info.name} has no non-empty text.")
    if len(frame) < 2:  # refused here, before it is stored: the train/test split needs two
        raise UserError(f"{info.name} has one document with text in column {column!r}: a train/test split "
                        "needs at least 2 (one document per row; a .txt file is split at blank lines, or at lines "
                        "when it has none).")
    if "label" in frame.columns and frame["label"].dtype == object:
        frame["label"] = frame["label"].astype(str)  # one Arrow type even if the column mixes types
    return Dataset.from_pandas(frame, preserve_index=False, info=DatasetInfo(description=" ".join(info.notices)))


def describe_upload(path: str) -> UploadInfo:
    """Kind, row count, text-like columns (best first) and notices of an uploaded file."""
    return _read(path)[1]


def upload_columns(path: str) -> list[str]:
    """The text-like columns of the file, the default pick first."""
    return describe_upload(path).columns


# ---------------------------------------------------------------- reading


def _read(path: str):
    """(pandas frame, UploadInfo) for any supported file, or a UserError."""
    p = Path(path or "")
    name = p.name or "The upload"
    if not path or not p.is_file():
        raise UserError(f"No file at {path!r}: upload a CSV, JSON, JSONL, Parquet or TXT file.")
    ext = p.suffix.lower()
    if ext not in SUPPORTED:
        raise UserError(
            f"{name}: unsupported file type {ext or '(no extension)'!r}. "
            f"Upload one of: {', '.join(sorted(SUPPORTED))}."
        )
    size = p.stat().st_size
    if size == 0:
        raise UserError(f"{name} is empty: upload a file with at least a few texts.")
    if size > MAX_UPLOAD_MB * 2**20:
        raise UserError(f"{name} is {size / 2**20:,.1f} MB; this server reads uploads of at most "
                        f"{MAX_UPLOAD_MB:,} MB (MLM_MAX_UPLOAD_MB).")
    if ext == ".parquet":
        frame, notices = _read_parquet(p, name), []
    else:
        text, notices = _decode(p, name, SUPPORTED[ext])
        frame = _parse_text(text, ext, name, notices)
    _check_shape(len(frame.columns), len(frame), name)
    return frame, _describe(frame, name, SUPPORTED[ext], notices)


def _check_shape(columns: int, rows: int, name: str) -> None:
    if columns > MAX_COLUMNS:
        raise UserError(f"{name} has {columns:,} columns; this server reads at most {MAX_COLUMNS:,} "
                        f"(MLM_MAX_UPLOAD_COLUMNS). Keep the text column and a few others.")
    if rows > MAX_ROWS:
        raise UserError(f"{name} has more than {MAX_ROWS:,} rows, the most this server reads "
                        f"(MLM_MAX_UPLOAD_ROWS). Upload a sample.")


def _csv_header_columns(text: str, sep: str) -> int:
    """Columns in the header line only: counted before pandas parses (and allocates) every row."""
    import csv

    first = next(csv.reader(io.StringIO(text[: 1 << 22].split("\n", 1)[0]), delimiter=sep), [])
    return len(first)


def _decode(p: Path, name: str, kind: str) -> tuple[str, list[str]]:
    raw = p.read_bytes()
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Windows "Unicode" text: NULs are expected
        try:
            return raw.decode("utf-16"), [f"{name} is UTF-16 text; it was read as such."]
        except UnicodeDecodeError:
            pass
    if b"\x00" in raw[:_SNIFF_BYTES]:
        raise UserError(
            f"{name} is not a {kind} file: it holds binary data (NUL bytes). "
            f"Export your texts as CSV, JSON, JSONL, Parquet or plain text."
        )
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        where = exc.start
    try:
        text, encoding = raw.decode("cp1252"), "Windows-1252"
    except UnicodeDecodeError:
        text, encoding = raw.decode("latin-1"), "Latin-1"
    if _control_share(text[:_SNIFF_BYTES]) > 0.01:
        raise UserError(f"{name} is not a {kind} file: it holds binary data, not text.")
    notice = (
        f"{name} is not UTF-8 (first bad byte at offset {where:,}); it was read as {encoding}. "
        f"If accents or quotes look wrong, save the file as UTF-8 and upload it again."
    )
    return text, [notice]


def _control_share(text: str) -> float:
    """Share of control characters other than tab/newline: high in binary data read as text."""
    if not text:
        return 0.0
    controls = sum(1 for c in text if ord(c) < 32 and c not in "\t\n\r\f")
    return controls / len(text)


def _parse_text(text: str, ext: str, name: str, notices: list[str]):
    import pandas as pd

    if ext == ".txt":
        return _split_plain_text(text, name, notices)
    try:
        if ext in (".csv", ".tsv"):
            sep = "\t" if ext == ".tsv" else ","
            _check_shape(_csv_header_columns(text, sep), 0, name)
            return pd.read_csv(io.StringIO(text), sep=sep, nrows=MAX_ROWS + 1)
        if ext in (".jsonl", ".ndjson"):
            return pd.read_json(io.StringIO(text), lines=True, nrows=MAX_ROWS + 1)
        return _read_json(text)
    except pd.errors.EmptyDataError:
        raise UserError(f"{name} holds no rows: upload a file with a header and some texts.") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise UserError(f"Could not read {name} as {SUPPORTED[ext]}: {_first_line(exc)[:200]}") from None
    except RecursionError:
        raise UserError(f"Could not read {name} as {SUPPORTED[ext]}: it nests too deeply.") from None


def _read_json(text: str):
    """A JSON list of records, a {column: values} object, or JSON Lines saved as .json."""
    import json

    import pandas as pd

    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return pd.read_json(io.StringIO(text), lines=True)  # many .json exports are really JSON Lines
    if isinstance(data, dict):
        lists = {k: v for k, v in data.items() if isinstance(v, list)}
        if len(lists) == 1 and all(isinstance(r, dict) for r in next(iter(lists.values()))):
            data = next(iter(lists.values()))  # {"data": [{...}, ...]}
        elif lists:
            _too_big(len(lists), max(map(len, lists.values())))
            return pd.DataFrame(lists)
        else:
            data = [data]
    if not isinstance(data, list):
        raise ValueError("expected a list of records or an object of columns")
    _too_big(max((len(r) for r in data[:1000] if isinstance(r, dict)), default=0), len(data))
    if data and all(isinstance(r, str) for r in data):
        return pd.DataFrame({"text": data})  # ["text 1", "text 2", ...]
    return pd.DataFrame.from_records([r for r in data if isinstance(r, dict)])


def _too_big(columns: int, rows: int) -> None:
    if columns > MAX_COLUMNS or rows > MAX_ROWS:
        raise ValueError(f"{columns:,} columns, {rows:,} rows: this server reads at most {MAX_COLUMNS:,} columns "
                         f"and {MAX_ROWS:,} rows (MLM_MAX_UPLOAD_COLUMNS, MLM_MAX_UPLOAD_ROWS)")


def _read_parquet(p: Path, name: str):
    import pandas as pd

    with open(p, "rb") as f:
        magic = f.read(4)
    if magic != _PARQUET_MAGIC:
        raise UserError(f"{name} is not a Parquet file (it does not start with PAR1).")
    try:
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(p).metadata  # the footer only: shape before any data is read
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a damaged file
        raise UserError(f"Could not read {name} as Parquet: {_first_line(exc)[:200]}") from None
    _check_shape(meta.num_columns, meta.num_rows, name)
    try:
        return pd.read_parquet(p)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a damaged file
        raise UserError(f"Could not read {name} as Parquet: {_first_line(exc)}") from None


def _split_plain_text(text: str, name: str, notices: list[str]):
    import pandas as pd

    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if re.search(r"\n[ \t]*\n", text):
        docs = [" ".join(line.strip() for line in para.splitlines()) for para in re.split(r"\n[ \t]*\n", text)]
        how = "paragraphs separated by blank lines"
    else:
        docs = text.splitlines()
        how = "one document per line (the file has no blank lines)"
    docs = [d.strip() for d in docs if d.strip()]
    if not docs:
        raise UserError(f"{name} holds only whitespace: upload a file with some text.")
    notices.append(f"{name} was read as {len(docs):,} documents: {how}.")
    return pd.DataFrame({"text": docs})


def _describe(frame, name: str, kind: str, notices: list[str]) -> UploadInfo:
    if frame.empty or len(frame.columns) == 0:
        raise UserError(f"{name} holds no rows: upload a file with some texts.")
    frame.columns = [str(c) for c in frame.columns]
    lengths = {c: _mean_text_length(frame[c]) for c in frame.columns}
    text_columns = sorted((c for c, n in lengths.items() if n is not None), key=lambda c: -lengths[c])
    if not text_columns:
        raise UserError(
            f"{name} has no text column: its columns ({', '.join(frame.columns)}) hold numbers, lists, nested "
            "objects or other values that are not plain text. Upload a file with a column of texts (for example "
            "one named 'text')."
        )
    default = "text" if "text" in text_columns else text_columns[0]
    ordered = [default] + [c for c in text_columns if c != default]
    return UploadInfo(name, kind, len(frame), ordered, default, notices)


def _mean_text_length(column) -> float | None:
    """Mean length of the strings in a column, or None when it is not mostly strings."""
    values = column.dropna()
    if values.empty:
        return None
    sample = values.iloc[:1000]
    strings = [v for v in sample if isinstance(v, str)]
    if len(strings) < 0.8 * len(sample) or not any(s.strip() for s in strings):
        return None
    return sum(len(s) for s in strings) / len(strings)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
