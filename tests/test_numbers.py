"""engine/numbers.py: the one parser and formatter of numbers a user types, and the chunk rule."""

from __future__ import annotations

import math

import pytest

from engine.errors import UserError
from engine.numbers import (
    GIB,
    MIB,
    check_chunk_size,
    env_number,
    format_bytes,
    gib,
    mib,
    number,
    optional_whole,
    whole,
)


@pytest.mark.parametrize("raw, expected", [
    ("2e-5", 2e-5), (" 3 ", 3.0), ("1,000", 1000.0), ("$1,250.5", 1250.5), ("1_000", 1000.0), (7, 7.0), (True, 1.0),
])
def test_numbers_from_widgets_text_and_json(raw, expected):
    assert number(raw, "X") == expected


@pytest.mark.parametrize("raw, message", [
    ("fast", "Learning rate must be a number, got 'fast'."),
    ([1], "Learning rate must be a number, got [1]."),
    (None, "Learning rate must be a number; the field is empty."),
    ("  ", "Learning rate must be a number; the field is empty."),
    ("inf", "Learning rate must be a finite number, got 'inf'."),
    (math.nan, "Learning rate must be a finite number, got nan."),
])
def test_bad_numbers_name_the_field(raw, message):
    with pytest.raises(UserError) as err:
        number(raw, "Learning rate")
    assert str(err.value) == message


def test_whole_numbers():
    assert whole("64", "Chunk size") == 64 and whole(64.0, "Chunk size") == 64
    assert isinstance(whole("1,024", "N"), int)
    with pytest.raises(UserError, match=r"^Batch size must be a whole number, got 1\.5\.$"):
        whole(1.5, "Batch size")
    with pytest.raises(UserError, match="Seed must be a whole number, got 'abc'"):
        whole("abc", "Seed")
    with pytest.raises(UserError, match="Seed must be a whole number of 0 or more, got -1"):
        whole(-1, "Seed", minimum=0)
    with pytest.raises(UserError, match="top-k must be a whole number between 1 and 20, got 'x'"):
        whole("x", "top-k", what=" between 1 and 20")


def test_optional_boxes_default_when_empty():
    assert optional_whole(None, "Documents") == 0 and optional_whole("", "Documents", default=5) == 5
    assert optional_whole(12.0, "Documents") == 12
    with pytest.raises(UserError, match="Documents must be a whole number"):
        optional_whole("lots", "Documents")


def test_environment_numbers_never_raise():
    env = {"A": "2.5", "B": "oops", "C": "0", "D": ""}
    assert env_number("A", 1.0, env=env) == 2.5
    assert env_number("B", 1.0, env=env) == 1.0
    assert env_number("C", 4, minimum=1, env=env) == 1
    assert env_number("D", 4, env=env) == 4 and env_number("missing", 4, env=env) == 4
    assert env_number("A", 4, env=env) == 4  # a whole number was wanted


@pytest.mark.parametrize("size, message", [
    (0, "Chunk size must be at least 8 tokens, got 0."),
    ("abc", "Chunk size must be a whole number, got 'abc'."),
    (513, "Chunk size 513 is above the model's maximum of 512 tokens."),
])
def test_the_one_chunk_rule(size, message):
    with pytest.raises(UserError) as err:
        check_chunk_size(size, 512)
    assert str(err.value) == message


def test_the_chunk_rule_speaks_of_sequences_and_models_too():
    assert check_chunk_size("128", None) == 128
    with pytest.raises(UserError, match="Sequence length 600 is above bert-base's maximum of 512 tokens"):
        check_chunk_size(600, 512, "Sequence length", "bert-base")


def test_every_chunk_size_check_is_the_same_rule():
    from engine.costs.calculator import CostSettings
    from engine.training.config import TrainConfig

    for check in (lambda: TrainConfig(chunk_size=4).validated(), lambda: CostSettings(seq_len=4).validated()):
        with pytest.raises(UserError, match="must be at least 8 tokens, got 4"):
            check()


@pytest.mark.parametrize("n, text", [
    (0, "0 bytes"), (812, "812 bytes"), (1536, "1.5 KB"), (3 * MIB, "3.0 MB"), (1234.5 * GIB, "1,234.5 GB"),
])
def test_format_bytes(n, text):
    assert format_bytes(n) == text


def test_fixed_units():
    assert gib(1.5 * GIB) == "1.50 GiB" and gib(GIB / 8, 3) == "0.125 GiB"
    assert mib(2.25 * MIB) == "2.2 MiB" and mib(MIB, 0) == "1 MiB"


def test_one_formatter_everywhere():
    from engine.cli import estimate as cli_estimate
    from engine.compare.model_cache import human_bytes
    from engine.runs.export import human_size

    assert human_bytes is format_bytes and human_size is format_bytes
    assert cli_estimate.gib is gib and cli_estimate.mib is mib
