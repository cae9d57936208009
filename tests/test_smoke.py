"""The engine prepares the bundled corpus offline and the app builds."""

from engine.data import corpus as data


def test_prepare_small_corpus(small_corpus, tokenizer):
    prepared = data.prepare(small_corpus, tokenizer, chunk_size=64)
    summary = prepared.summary()
    assert summary["reviews"] == 200
    assert summary["chunks"] == summary["tokens"] // 64 or summary["chunks"] > 0
