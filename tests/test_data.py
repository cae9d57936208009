"""engine.data.corpus.prepare: caching, chunking, bad chunk sizes, tiny corpora and `python -m engine prepare`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from engine.__main__ import main as engine_main
from engine.cli import prepare as cli_prepare
from engine.data import corpus as data
from engine.errors import UserError
from tests.conftest import ROOT


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MLM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def small_csv(tmp_path) -> str:
    import pandas as pd

    texts = [f"Review {i}: the film was {'great' if i % 2 else 'dull'} and the cast did fine work. " * 3
             for i in range(60)]
    path = tmp_path / "small.csv"
    pd.DataFrame({"text": texts, "label": [i % 2 for i in range(60)]}).to_csv(path, index=False)
    return str(path)


def test_second_prepare_is_a_cache_hit(small_corpus, tokenizer, fresh_cache):
    first = data.prepare(small_corpus, tokenizer, chunk_size=64)
    second = data.prepare(small_corpus, tokenizer, chunk_size=64)
    assert (first.cache_hit, second.cache_hit) == (False, True)
    for split in ("train", "test"):
        for column in ("input_ids", "special_tokens_mask", "offset_mapping", "word_ids"):
            np.testing.assert_array_equal(first.chunks[split][column], second.chunks[split][column])
    other_size = data.prepare(small_corpus, tokenizer, chunk_size=32)  # another chunk size needs no tokenizing
    assert other_size.cache_hit and other_size.summary()["tokens"] == first.summary()["tokens"]


def test_chunks_are_the_concatenated_corpus(small_corpus, tokenizer, fresh_cache):
    prepared = data.prepare(small_corpus, tokenizer, chunk_size=64)
    tokenized = data.tokenize_corpus(small_corpus, tokenizer)
    for split in ("train", "test"):
        chunks, stats = prepared.chunks[split], prepared.stats[split]
        flat = np.asarray(tokenized.splits[split].input_ids)
        assert chunks["input_ids"].shape == (stats.chunks, 64)
        assert stats.chunks == flat.size // 64 and stats.dropped == flat.size % 64
        np.testing.assert_array_equal(chunks["input_ids"].reshape(-1), flat[: stats.chunks * 64])
        np.testing.assert_array_equal(chunks["labels"], chunks["input_ids"])  # labels as in the course
    assert prepared.summary()["reviews"] == 200


@pytest.mark.parametrize("size, message", [(0, "at least 8"), (-5, "at least 8"), (513, "above the model's maximum"),
                                           ("abc", "whole number")])
def test_bad_chunk_size(small_corpus, tokenizer, size, message):
    with pytest.raises(UserError, match=message):
        data.prepare(small_corpus, tokenizer, chunk_size=size, max_length=512)


def test_corpus_smaller_than_one_chunk(tmp_path, tokenizer, fresh_cache):
    path = tmp_path / "tiny.txt"
    path.write_text("\n".join(f"short text {i}" for i in range(10)))
    cfg = data.CorpusConfig(source="upload", upload_path=str(path), text_column="", test_fraction=0.2)
    with pytest.raises(UserError, match="fewer than one chunk of 128"):
        data.prepare(cfg, tokenizer, chunk_size=128)


def test_batched_tokenizing_matches_one_batch_and_reports_progress(tokenizer):
    texts = [f"Text number {i}, with some words." for i in range(25)]
    seen = []
    batched = data.tokenize_texts(texts, tokenizer, progress=seen.append, batch_size=10)
    whole = data.tokenize_texts(texts, tokenizer, batch_size=1000)
    for field in ("input_ids", "offsets", "special", "doc_lengths"):
        np.testing.assert_array_equal(getattr(batched, field), getattr(whole, field))
    assert seen == sorted(seen) and seen[0] == 0.0 and seen[-1] == 1.0 and len(seen) == 4


def test_tokenize_corpus_progress_covers_both_splits(small_corpus, tokenizer, fresh_cache):
    calls = []
    data.tokenize_corpus(small_corpus, tokenizer, progress=lambda f, desc: calls.append((f, desc)))
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert any("train" in d for _, d in calls) and any("test" in d for _, d in calls)


def test_cli_prepare_prints_one_json_line(small_csv, fresh_cache, capsys):
    argv = ["--dataset", small_csv, "--model", "bundled", "--chunk-size", "16"]
    assert cli_prepare.main(argv) == 0
    first = json.loads(capsys.readouterr().out.strip())
    assert cli_prepare.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    second = json.loads(lines[0])
    assert {"reviews", "tokens", "chunks", "seconds", "cache_hit"} <= set(first)
    assert (first["reviews"], first["cache_hit"], second["cache_hit"]) == (60, False, True)
    assert first["chunks"] == second["chunks"] > 0


def test_cli_bad_chunk_size_is_an_error_line(small_csv, fresh_cache, capsys):
    assert engine_main(["prepare", "--dataset", small_csv, "--chunk-size", "0"]) == 2
    assert "error: Chunk size must be at least 8" in capsys.readouterr().err


def test_python_m_engine_prepare(small_csv, fresh_cache):
    """The command line itself, in a subprocess (offline, the test's private cache)."""
    env = {**os.environ, "MLM_CACHE_DIR": str(fresh_cache)}
    cmd = [sys.executable, "-m", "engine", "prepare", "--dataset", small_csv, "--model", "bundled",
           "--chunk-size", "128"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["reviews"] == 60 and summary["cache_hit"] is False and summary["chunk_size"] == 128
    assert summary["chunks"] == sum(summary["chunks_per_split"].values()) > 0


def test_cli_prepare_stores_a_file_and_reuses_it_by_id(small_csv, fresh_cache, capsys):
    assert cli_prepare.main(["--dataset", small_csv, "--chunk-size", "16"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert len(first["corpus_id"]) == 16
    assert cli_prepare.main(["--corpus-id", first["corpus_id"], "--chunk-size", "16"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["corpus_id"], again["reviews"], again["cache_hit"]) == (first["corpus_id"], 60, True)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ffffffffffffffff"])
def test_cli_prepare_refuses_an_unknown_or_escaping_corpus_id(bad, capsys):
    assert engine_main(["prepare", "--corpus-id", bad]) == 2
    assert "corpus" in capsys.readouterr().err


def test_token_caches_of_an_earlier_version_are_freed(small_corpus, tokenizer, fresh_cache):
    """Version 3 trims byte-level offsets: version-2 caches could hold untrimmed ones and are never read."""
    stale = fresh_cache / "tok-v2-abc-def" / "train"
    stale.mkdir(parents=True)
    (stale / "offsets.npy").write_bytes(b"old")
    other = fresh_cache / "models"
    other.mkdir()
    data.prepare(small_corpus, tokenizer, chunk_size=64)
    assert not stale.parent.exists() and other.exists()
    assert [p.name.split("-")[1] for p in fresh_cache.glob("tok-*")] == [f"v{data.CACHE_VERSION}"]


def test_prepare_makes_offsets_only_when_read_and_then_caches_them(small_corpus, tokenizer, fresh_cache):
    """Token-level paths never pay for offsets; whole-word masking gets the same ones as before."""
    prepared = data.prepare(small_corpus, tokenizer, chunk_size=64)
    folder = next(fresh_cache.glob(f"tok-v{data.CACHE_VERSION}-*"))
    assert not (folder / "train" / "offsets.npy").exists()
    train = prepared.chunks["train"]
    assert list(train) == ["input_ids", "attention_mask", "special_tokens_mask", "labels", "offset_mapping",
                           "word_ids"]
    texts = data.load_corpus(small_corpus)["train"][:]["text"]
    eager = data.tokenize_texts(texts, tokenizer)  # offsets and all, in one pass
    n = train["input_ids"].size
    np.testing.assert_array_equal(train["offset_mapping"].reshape(-1, 2), eager.offsets[:n])
    words = data.word_ids(train["offset_mapping"], train["special_tokens_mask"])
    np.testing.assert_array_equal(train["word_ids"], words)
    assert (folder / "train" / "offsets.npy").exists() and not (folder / "test" / "offsets.npy").exists()
    reopened = data.prepare(small_corpus, tokenizer, chunk_size=64).chunks["train"]
    np.testing.assert_array_equal(reopened["offset_mapping"], train["offset_mapping"])


def test_fast_tokenizing_gives_the_same_ids_and_special_mask(tokenizer):
    texts = [f"Review {i}: an UNUSUAL film, [SEP] inside and café-style words." for i in range(30)]
    fast = data.tokenize_texts(texts, tokenizer, offsets=False, batch_size=7)
    full = data.tokenize_texts(texts, tokenizer, batch_size=7)
    assert fast.offsets is None and full.offsets.shape == (full.total, 2)
    for field in ("input_ids", "special", "doc_lengths"):
        np.testing.assert_array_equal(getattr(fast, field), getattr(full, field))


def test_training_batches_ask_for_word_columns_only_for_whole_word_masking(small_corpus, tokenizer, fresh_cache):
    from engine.training.batches import take

    train = data.prepare(small_corpus, tokenizer, chunk_size=64).chunks["train"]
    folder = next(fresh_cache.glob(f"tok-v{data.CACHE_VERSION}-*"))
    token_level = take(train, np.arange(4), words=False)
    assert "offset_mapping" not in token_level and not (folder / "train" / "offsets.npy").exists()
    whole_word = take(train, np.arange(4))
    assert whole_word["offset_mapping"].shape == (4, 64, 2) and (folder / "train" / "offsets.npy").exists()
