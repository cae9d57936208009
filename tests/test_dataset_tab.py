"""The Dataset tab through its public API `/dataset_stats`, against the launched app."""

from __future__ import annotations

import pandas as pd
import pytest
from gradio_client import handle_file


def stats(client, source="imdb", upload=None, text_column="", chunk_size=128, max_docs=200, model="bundled"):
    return client.predict(source, "", upload, text_column, model, chunk_size, max_docs, api_name="/dataset_stats")


def test_dataset_stats_bundled_imdb(client):
    result = stats(client)
    assert result["split_sizes"] == {"train": 180, "test": 20}
    assert result["labels_ok"] is True and "only 0 and 1" in result["sanity"]
    assert set(result["label_counts"]["train"]) == {"0", "1"}
    assert result["model"] == {"ref": "bundled", "max_length": 512}
    lengths = result["token_lengths"]["train"]
    assert lengths["documents"] == 180 and 0 <= lengths["share_over_max"] <= 1
    chunks = result["chunks"]["train"]
    assert chunks["chunks"] == chunks["tokens"] // 128 > 0


def test_bad_chunk_size_is_an_error_and_the_server_keeps_serving(client):
    with pytest.raises(Exception, match="Chunk size must be at least 8 tokens, got 0"):
        stats(client, chunk_size=0)
    with pytest.raises(Exception, match="above the model's maximum of 512"):
        stats(client, chunk_size=1024)
    assert stats(client, chunk_size=64)["chunk_size"] == 64


def test_upload_with_a_picked_column(client, tmp_path):
    path = tmp_path / "reviews.csv"
    texts = [f"Review {i}: a {'great' if i % 2 else 'dull'} film with a fine cast and a long plot. " * 4
             for i in range(40)]
    pd.DataFrame({"id": range(40), "body": texts, "label": [i % 3 for i in range(40)]}).to_csv(path, index=False)
    result = stats(client, source="upload", upload=handle_file(str(path)), text_column="body", max_docs=0)
    assert sum(result["split_sizes"].values()) == 40
    assert result["labels_ok"] is False and "not only 0 and 1" in result["sanity"]


def test_binary_upload_is_refused_with_a_message(client, tmp_path):
    path = tmp_path / "photo.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(Exception, match="photo.csv is not a CSV file: it holds binary data"):
        stats(client, source="upload", upload=handle_file(str(path)))
    assert stats(client)["labels_ok"] is True


def test_hub_dataset_offline_says_so(client):
    """Offline, a Hub dataset that is not in the local cache is refused, naming what is cached
    (tests/test_hub_cache.py loads one that is)."""
    with pytest.raises(Exception, match="not available offline.*not in the local cache"):
        client.predict("hub", "stanfordnlp/imdb", None, "", "bundled", 128, 200, api_name="/dataset_stats")
