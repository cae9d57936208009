"""Uploads: every supported format reads into text(+label), every bad file gets a clear message."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from engine.data.corpus import CorpusConfig, load_corpus
from engine.data.uploads import describe_upload, read_upload, upload_columns
from engine.errors import UserError

ROWS = [("A gripping film, loved it", 1), ("Dull and far too long", 0), ("The cast is superb", 1)]


def write(tmp_path, name: str, content) -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"id": [1, 2, 3], "review": [r[0] for r in ROWS], "label": [r[1] for r in ROWS]})


@pytest.mark.parametrize("ext", ["csv", "tsv", "json", "jsonl", "parquet"])
def test_table_formats_read_text_and_label(tmp_path, frame, ext):
    path = str(tmp_path / f"reviews.{ext}")
    if ext == "csv":
        frame.to_csv(path, index=False)
    elif ext == "tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif ext == "json":
        frame.to_json(path, orient="records")
    elif ext == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    ds = read_upload(path, "review", "label")
    assert ds.column_names == ["text", "label"]
    assert ds["text"][:] == [r[0] for r in ROWS]
    assert list(ds["label"][:]) == [r[1] for r in ROWS]


def test_column_picker_prefers_text_then_longest(tmp_path):
    content = "id,title,body\n1,Short,A much longer body of text here\n2,Tiny,Another long body text\n"
    path = write(tmp_path, "a.csv", content)
    assert upload_columns(path) == ["body", "title"]  # 'id' holds numbers, not text
    assert read_upload(path, "", "label")["text"][0] == "A much longer body of text here"  # "" = default pick
    path2 = write(tmp_path, "b.csv", "text,body\nshort,A much longer body of text here\n")
    assert describe_upload(path2).default == "text"


def test_label_column_missing_is_fine(tmp_path):
    path = write(tmp_path, "a.jsonl", '{"text": "one two"}\n{"text": "three four"}\n')
    assert read_upload(path, "text", "label").column_names == ["text"]


def test_json_variants(tmp_path):
    columns = write(tmp_path, "cols.json", json.dumps({"text": ["a b", "c d"], "label": [0, 1]}))
    assert read_upload(columns, "text", "label")["text"][:] == ["a b", "c d"]
    wrapped = write(tmp_path, "wrapped.json", json.dumps({"data": [{"text": "x y"}, {"text": "z w"}]}))
    assert read_upload(wrapped, "text", "label")["text"][:] == ["x y", "z w"]
    lines = write(tmp_path, "lines.json", '{"text": "x y"}\n{"text": "z w"}\n')  # JSON Lines named .json
    assert read_upload(lines, "text", "label")["text"][:] == ["x y", "z w"]


def test_txt_paragraphs_or_lines(tmp_path):
    paragraphs = write(tmp_path, "p.txt", "First paragraph\nstill first.\n\nSecond one.\n")
    ds = read_upload(paragraphs, "", "label")
    assert ds["text"][:] == ["First paragraph still first.", "Second one."]
    assert "paragraphs" in ds.info.description
    lines = write(tmp_path, "l.txt", "doc one\ndoc two\ndoc three\n")
    ds = read_upload(lines, "", "label")
    assert ds["text"][:] == ["doc one", "doc two", "doc three"]
    assert "one document per line" in ds.info.description


def test_empty_texts_are_dropped(tmp_path):
    path = write(tmp_path, "a.csv", 'text\n"kept text"\n""\n"   "\n"also kept"\n')
    assert read_upload(path, "text", "label")["text"][:] == ["kept text", "also kept"]


def test_non_utf8_is_read_as_cp1252_with_a_notice(tmp_path):
    path = write(tmp_path, "latin.csv", "text\nCafé naïve “quoted”\nplain line\n".encode("cp1252"))
    ds = read_upload(path, "text", "label")
    assert ds["text"][0] == "Café naïve “quoted”"
    info = describe_upload(path)
    assert any("not UTF-8" in n and "Windows-1252" in n for n in info.notices)
    assert "Windows-1252" in ds.info.description


def test_utf16_text_is_read(tmp_path):
    path = write(tmp_path, "u16.txt", "héllo wörld\nsecond line\n".encode("utf-16"))
    assert read_upload(path, "", "label")["text"][:] == ["héllo wörld", "second line"]


# ---------------------------------------------------------------- bad input, one message each


def expect_error(path, match: str, column: str = "text"):
    with pytest.raises(UserError, match=match):
        read_upload(path, column, "label")


def test_empty_file(tmp_path):
    expect_error(write(tmp_path, "empty.csv", b""), r"empty\.csv is empty")


def test_whitespace_only_file(tmp_path):
    expect_error(write(tmp_path, "blank.txt", "\n  \n\n"), r"only whitespace")


def test_header_only_csv(tmp_path):
    expect_error(write(tmp_path, "head.csv", "text,label\n"), r"holds no rows")


def test_binary_file_named_csv(tmp_path):
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
    expect_error(write(tmp_path, "photo.csv", png), r"photo\.csv is not a CSV file: it holds binary data")


def test_binary_without_nul_bytes(tmp_path):
    noise = bytes((i * 37 + 11) % 256 for i in range(4000)).replace(b"\x00", b"\x01")
    expect_error(write(tmp_path, "noise.csv", noise), r"not a CSV file: it holds binary data")


def test_no_text_column(tmp_path):
    path = write(tmp_path, "numbers.csv", "a,b\n1,2\n3,4\n")
    expect_error(path, r"numbers\.csv has no text column: its columns \(a, b\)")
    with pytest.raises(UserError, match="no text column"):
        upload_columns(path)


def test_named_column_missing(tmp_path):
    path = write(tmp_path, "a.csv", "review,label\ngood film,1\n")
    expect_error(path, r"a\.csv has no column 'text'\. Its text columns are: review\.")


def test_named_column_not_text(tmp_path):
    path = write(tmp_path, "a.csv", "review,stars\ngood film,5\nbad film,1\n")
    expect_error(path, r"Column 'stars' of a\.csv holds no text\. Pick one of: review\.", column="stars")


def test_unsupported_extension(tmp_path):
    expect_error(write(tmp_path, "notes.docx", "hello"), r"unsupported file type '\.docx'")


def test_malformed_json(tmp_path):
    expect_error(write(tmp_path, "bad.json", '{"text": [1, 2'), r"Could not read bad\.json as JSON")


def test_fake_parquet(tmp_path):
    expect_error(write(tmp_path, "fake.parquet", "text\nhello\n"), r"fake\.parquet is not a Parquet file")


def test_missing_file(tmp_path):
    expect_error(str(tmp_path / "gone.csv"), r"No file at")


def test_upload_through_load_corpus(tmp_path):
    texts = [f"review number {i} about a film" for i in range(30)]
    path = str(tmp_path / "corpus.csv")
    pd.DataFrame({"body": texts, "label": [i % 2 for i in range(30)]}).to_csv(path, index=False)
    corpus = load_corpus(CorpusConfig(source="upload", upload_path=path, text_column="body", test_fraction=0.2))
    assert (len(corpus["train"]), len(corpus["test"])) == (24, 6)
    assert sorted(corpus["train"]["text"][:] + corpus["test"]["text"][:]) == sorted(texts)


def test_single_document_cannot_be_split(tmp_path):
    path = write(tmp_path, "one.txt", "just one document\n")
    with pytest.raises(UserError, match="needs at least 2"):
        load_corpus(CorpusConfig(source="upload", upload_path=path, text_column=""))


def test_a_one_document_upload_is_refused_before_it_is_stored(tmp_path, monkeypatch):
    """It could never be split for training: it must not take one of the store's places either."""
    from engine.data import store

    monkeypatch.setenv("MLM_CORPORA_DIR", str(tmp_path / "corpora"))
    one = tmp_path / "one.csv"
    one.write_text("text,label\nA single review.,1\n")
    with pytest.raises(UserError, match="one document with text in column 'text'"):
        store.store_upload(str(one))
    assert [c for c in store.list_corpora() if c.origin != "bundled"] == []


def test_a_label_column_picked_by_name_must_exist(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("text,dept\nFirst note.,a\nSecond note.,b\n")
    with pytest.raises(UserError, match=r"notes.csv has no column 'nosuchcol' for labels. Its columns are: text, dept"):
        read_upload(str(path), "text", "nosuchcol")
    assert "label" not in read_upload(str(path), "text", "label").column_names  # the default may be absent
    assert read_upload(str(path), "text", "dept")["label"] == ["a", "b"]
