"""The /mask_preview endpoint, through gradio_client against the launched app."""

from __future__ import annotations

import pytest

TEXT = "The acting was wonderful but the plot of this long film was thin and predictable from the start."


def preview(client, **kwargs) -> dict:
    return client.predict(api_name="/mask_preview", **kwargs)


def test_mask_preview_returns_tokens_kinds_labels_and_counts(client):
    result = preview(client, text=TEXT, mlm_probability=0.5, seed=3)
    tokens = result["tokens"]
    assert tokens[0]["original"] == "[CLS]" and tokens[0]["kind"] == "unmasked"
    assert {t["kind"] for t in tokens} <= {"unmasked", "mask", "random", "kept"}
    selected = [t for t in tokens if t["kind"] != "unmasked"]
    assert selected and all(t["label"] == t["original"] for t in selected)
    assert sum(result["counts"].values()) == len(tokens)
    assert result["selected"] == len(selected)
    assert result["realised_rate"] == pytest.approx(result["selected"] / result["eligible"])
    assert result["expected"] == {"rate": 0.5, "mask": 0.8, "random": 0.1, "kept": pytest.approx(0.1)}
    again = preview(client, text=TEXT, mlm_probability=0.5, seed=3)
    assert again["tokens"] == tokens  # the seed makes it reproducible across calls


def test_whole_word_preview_carries_the_forced_split_notice(client):
    result = preview(client, text=TEXT, strategy="whole_word", mlm_probability=0.5, seed=1)
    assert any("forced to 1" in n for n in result["notices"])
    assert result["counts"]["random"] == result["counts"]["kept"] == 0


def test_chunk_source(client):
    result = preview(client, source="chunk", corpus="rotten_tomatoes", chunk_index=2, seed=0)
    assert len(result["tokens"]) == 128
    assert "chunk 2" in result["source"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(text=TEXT, mask_replace_prob=0.8, random_replace_prob=0.5), "above 1"),
        (dict(text=TEXT, mlm_probability=0), "above 0 and below 1"),
        (dict(text=TEXT, mlm_probability="lots"), "must be a number"),
        (dict(text=""), "Type a text to mask"),
        (dict(source="chunk", corpus="rotten_tomatoes", chunk_index=10**7), "out of range"),
    ],
)
def test_bad_input_gets_a_message_and_the_server_keeps_serving(client, kwargs, message):
    with pytest.raises(Exception, match=message):
        preview(client, **kwargs)
    assert preview(client, text="Still here.")["tokens"][1]["original"] == "still"


def test_long_text_is_truncated_with_a_notice(client):
    result = preview(client, text="word " * 20_000)
    assert len(result["tokens"]) == 512
    assert any("maximum of 512 tokens" in n for n in result["notices"])


def test_the_counts_table_adds_up_to_the_rate_line():
    """Special tokens are their own row: 'unmasked' + the selected kinds = the maskable tokens the rate line names."""
    from components.masking import counts_frame, rate_markdown
    from engine.masking import MaskingConfig, preview_text
    from engine.models import cached_tokenizer

    result = preview_text("The film was a quiet, careful study of grief and memory.", cached_tokenizer("bundled"),
                          MaskingConfig(mlm_probability=0.4, seed=3))
    table = counts_frame(result).set_index("kind")["tokens"]
    assert table["special tokens (never masked)"] == 2  # [CLS] and [SEP]
    assert table.sum() == len(result.tokens)
    assert table.drop("special tokens (never masked)").sum() == result.eligible
    assert f"{result.selected} of {result.eligible} maskable tokens" in rate_markdown(result)


def test_the_legend_explains_the_tokenizers_piece_marks(tiny_modernbert_dir):
    """Byte-level tokens read 'Ġthe': the legend says what Ġ means (and ## for WordPiece)."""
    from components.masking import token_html
    from engine.masking import MaskingConfig, preview_text
    from engine.models import cached_tokenizer

    text = "The reviewers found the cardiomyopathy and hyperkalaemia notes exhausting."
    byte_level = token_html(preview_text(text, cached_tokenizer(tiny_modernbert_dir), MaskingConfig(seed=1)))
    wordpiece = token_html(preview_text(text, cached_tokenizer("bundled"), MaskingConfig(seed=1)))
    assert "Ġ begins a token that follows a space" in byte_level and "Ġ begins" not in wordpiece
    assert "## continues the word before it" in wordpiece
