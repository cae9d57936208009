"""Every input validated by its type, once (issue 11): wrong types and out-of-range values for every
field of every config, generated from the dataclasses themselves, plus the endpoint arguments.

Each bad value must end in a UserError (a plain message), never a TypeError, an OverflowError or a
run that fails later; long values are never echoed back whole.
"""

from __future__ import annotations

import dataclasses
import json
import math

import gradio as gr
import pytest

from engine.costs.calculator import CostSettings
from engine.data.corpus import CorpusConfig
from engine.errors import UserError
from engine.masking import MaskingConfig
from engine.run_folder import RunFolder
from engine.training.config import CORPUS_RANGES, TrainConfig
from engine.validation import MAX_TEXT, SEED_MAX, json_object, type_name
from tests.conftest import tiny_settings

LONG = "x" * 5_000
# Values of the wrong type for each declared type (JSON can carry all of them).
WRONG = {
    "int": [True, "x", [1], {"a": 1}, None, 1.5, 1e30, -math.inf, math.nan, LONG],
    "float": [False, "x", [1.0], {"a": 1}, None, math.inf, -math.inf, 1e300, LONG],
    "bool": ["no", "false", 0, 1, None, [True], {"a": True}],
    "str": [5, 1.5, True, None, ["a"], {"a": "b"}, LONG],
    "list[str]": [5, True, [1, 2], {"a": "b"}, [None], ["x" * 500]],
    "CorpusConfig": ["imdb", 5, True, ["imdb"], None],
}


def _cases(cls, ranges_of):
    """(field name, bad value) for every field of `cls`: wrong types, then its range's edges."""
    for f in dataclasses.fields(cls):
        kind = type_name(f.type)
        for value in WRONG.get(kind, []):
            if f.name == "lora_targets" and isinstance(value, str):
                continue  # a comma-separated string is a documented form of the list
            yield f.name, value
        meta = ranges_of(f)
        if meta.get("minimum") is not None:
            yield f.name, meta["minimum"] - 1
        if meta.get("above") is not None:
            yield f.name, meta["above"]
        if meta.get("below") is not None:
            yield f.name, meta["below"]
        if meta.get("maximum") is not None:
            yield f.name, meta["maximum"] + 1
        if meta.get("choices"):
            yield f.name, "not-a-choice"


TRAIN_CASES = list(_cases(TrainConfig, lambda f: dict(f.metadata)))
CORPUS_CASES = list(_cases(CorpusConfig, lambda f: CORPUS_RANGES.get(f.name, {})))


def _refused(settings: dict) -> str:
    with pytest.raises(UserError) as err:
        TrainConfig.from_dict(settings)
    message = str(err.value)
    assert len(message) < 400 and LONG not in message, message
    return message


@pytest.mark.parametrize("name,value", TRAIN_CASES, ids=[f"{n}={str(v)[:12]}" for n, v in TRAIN_CASES])
def test_every_train_field_refuses_wrong_types_and_out_of_range_values(name, value):
    settings = tiny_settings("some/model", method="lora")  # lora: the LoRA-only ranges apply
    settings[name] = value
    _refused(settings)


@pytest.mark.parametrize("name,value", CORPUS_CASES, ids=[f"corpus.{n}={str(v)[:12]}" for n, v in CORPUS_CASES])
def test_every_corpus_field_refuses_wrong_types_and_out_of_range_values(name, value):
    settings = tiny_settings("some/model")
    settings["corpus"] = {**settings["corpus"], name: value}
    message = _refused(settings)
    assert "orpus" in message


def test_the_issues_examples_get_plain_messages():
    base = tiny_settings("some/model")
    assert "Seed" in _refused({**base, "seed": -1})
    assert "Seed" in _refused({**base, "seed": 1e30})
    assert "Seed" in _refused({**base, "seed": SEED_MAX + 1})
    assert TrainConfig.from_dict({**base, "seed": SEED_MAX}).seed == SEED_MAX
    assert "true or false" in _refused({**base, "whole_word_mask": "no"})
    assert "Warmup" in _refused({**base, "warmup_steps": -math.inf})
    assert "Corpus must be an object" in _refused({**base, "corpus": "imdb"})
    assert "LoRA target" in _refused({**base, "lora_targets": 5})
    assert "max docs" in _refused({**base, "corpus": {"max_docs": "x"}})
    assert "max docs" in _refused({**base, "corpus": {"max_docs": -5}})
    assert "too long" in _refused({**base, "model": "m" * 5_000})
    assert "nonsense" in _refused({**base, "nonsense": 1})  # unknown fields are named
    assert "bogus" in _refused({**base, "corpus": {"bogus": 1}})


def test_good_values_still_pass():
    cfg = TrainConfig.from_dict(tiny_settings("some/model", whole_word_mask=True, lora_targets="query, value",
                                              seed=0, warmup_steps=3.0))
    assert cfg.whole_word_mask is True and cfg.lora_targets == ["query", "value"] and cfg.warmup_steps == 3
    assert len(cfg.model) < MAX_TEXT


@pytest.mark.parametrize("text,message", [
    ("[" * 100_000 + "]" * 100_000, "too long"),  # the issue's 100,000 levels: refused by size first
    ("[" * 40_000 + "]" * 40_000, "nests"),
    ('{"a":' * 50 + "1" + "}" * 50, "nests"),
    ("{" + " " * 200_000 + "}", "too long"),
    ("[1, 2]", "JSON object"),
    ("{bad", "not valid JSON"),
    (5, "JSON object as text"),
])
def test_config_json_is_bounded_in_size_and_depth(text, message):
    with pytest.raises(UserError, match=message):
        json_object(text, "config_json")


def test_start_training_argument_is_parsed_once_with_the_same_rules():
    from components.training_api import parse_config

    deep = '{"corpus": ' * 5_000 + "{}" + "}" * 5_000
    with pytest.raises(UserError, match="nests"):
        parse_config(deep)
    with pytest.raises(UserError, match="true or false"):
        parse_config(json.dumps({"whole_word_mask": "no"}))


@pytest.mark.parametrize("run_id", [12345, 1.5, ["a"], {"a": 1}, True, "x" * 100_000, "../etc", "id\u0661"])
def test_run_ids_of_the_wrong_type_or_size_are_refused_without_echoing_them(run_id, tmp_path):
    with pytest.raises(UserError) as err:
        RunFolder.open(run_id, tmp_path)
    assert len(str(err.value)) < 300
    assert RunFolder.find(run_id, tmp_path) is None


def test_user_errors_never_shows_raw_exception_text():
    from components.common import user_errors

    @user_errors
    def boom(exc):
        raise exc

    secret_path = "/srv/secret/runs/20260101-000000-abc/status.json"
    for exc, expected in [
        (OSError(28, "No space left on device", secret_path), "runs folder is full"),
        (OSError(30, "Read-only file system", secret_path), "read-only"),
        (KeyError(secret_path), "KeyError"),
        (RecursionError("maximum recursion depth"), "nested too deeply"),
        (UserError("Batch size must be at least 1."), "Batch size"),
    ]:
        with pytest.raises(gr.Error) as err:
            boom(exc)
        assert expected in err.value.message and secret_path not in err.value.message


def test_a_users_mistake_is_one_log_line_and_a_real_failure_one_traceback(caplog):
    """The server log keeps real failures visible: Gradio prints no traceback for either toast."""
    import logging

    from components.common import user_errors

    @user_errors
    def boom(exc):
        raise exc

    with caplog.at_level(logging.INFO, logger="components.common"):
        for exc in (UserError("Chunk size 9000 is above the model's maximum of 8192 tokens."), KeyError("x")):
            with pytest.raises(gr.Error) as err:
                boom(exc)
            assert err.value.print_exception is False
    mistake, failure = caplog.records
    assert mistake.levelno == logging.INFO and "Chunk size 9000" in mistake.getMessage() and not mistake.exc_info
    assert failure.levelno == logging.ERROR and failure.exc_info


# ---------------------------------------------------------------- the Costs tab's settings, endpoint arguments


def _cost_kind(annotation: str) -> str | None:
    """CostSettings' declared type, by what a number box or a text box may carry ('int | str' is a whole number)."""
    first = type_name(annotation).split("|")[0].strip()
    return first if first in ("int", "float", "bool", "str") else None


COST_CASES = [(f.name, v) for f in dataclasses.fields(CostSettings) if _cost_kind(f.type)
              for v in WRONG[_cost_kind(f.type)]
              if not (v is None and "None" in type_name(f.type))  # None keeps a preset's figure
              and not (f.name == "corpus_tokens" and v is None)]  # None: no time or money


@pytest.mark.parametrize("name,value", COST_CASES, ids=[f"{n}={str(v)[:12]}" for n, v in COST_CASES])
def test_every_cost_setting_refuses_wrong_types(name, value):
    with pytest.raises(UserError) as err:
        CostSettings.from_dict({"device": "cpu", name: value})
    assert len(str(err.value)) < 400 and LONG not in str(err.value)


@pytest.mark.parametrize("name", ["corpus_tokens", "batch_size", "epochs", "gpu_price_per_hour", "lora_r"])
def test_astronomically_large_estimate_inputs_are_refused(name):
    with pytest.raises(UserError, match="at most"):
        CostSettings.from_dict({name: 10**30, "device": "cpu"})


@pytest.mark.parametrize("top_k", [True, 1e30, "x" * 100, [3], None])
def test_fill_mask_arguments_are_checked_by_type(top_k):
    from engine.compare.predictions import check_top_k, normalize

    with pytest.raises(UserError):
        check_top_k(top_k)
    with pytest.raises(UserError, match="Text must be text"):
        normalize(12345, "[MASK]")


def test_a_5000_character_model_reference_gets_a_plain_message():
    from engine.models import resolve

    with pytest.raises(UserError, match="too long") as err:
        resolve("/" + "m" * 5_000)
    assert "m" * 100 not in str(err.value)


# ---------------------------------------------------------------- bounded work per request


def test_a_csv_with_a_million_columns_is_refused_before_it_is_parsed(tmp_path):
    from engine.data import uploads

    wide = tmp_path / "wide.csv"
    header = ",".join(f"c{i}" for i in range(1_000_000))
    wide.write_text(header + "\n" + ",".join("x" for _ in range(1_000_000)) + "\n")
    with pytest.raises(UserError, match=f"at most {uploads.MAX_COLUMNS:,}"):
        uploads.describe_upload(str(wide))


@pytest.mark.parametrize("ext,body", [
    (".csv", "text\n" + "".join(f"review {i}\n" for i in range(50))),
    (".jsonl", "".join(json.dumps({"text": f"review {i}"}) + "\n" for i in range(50))),
    (".json", json.dumps([{"text": f"review {i}"} for i in range(50)])),
    (".txt", "".join(f"review {i}\n" for i in range(50))),
])
def test_rows_analysed_in_the_web_process_are_capped(tmp_path, monkeypatch, ext, body):
    from engine.data import uploads

    monkeypatch.setattr(uploads, "MAX_ROWS", 20)
    path = tmp_path / f"long{ext}"
    path.write_text(body)
    with pytest.raises(UserError, match="20"):
        uploads.describe_upload(str(path))


def test_an_upload_over_the_size_limit_is_refused_with_the_limit(tmp_path, monkeypatch):
    from engine.data import uploads

    monkeypatch.setattr(uploads, "MAX_UPLOAD_MB", 1)
    path = tmp_path / "big.csv"
    path.write_text("text\n" + "a fine review\n" * 100_000)
    with pytest.raises(UserError, match="at most 1 MB"):
        uploads.describe_upload(str(path))


MASKING_CASES = [(f.name, v) for f in dataclasses.fields(MaskingConfig) for v in WRONG[type_name(f.type)]]
MASKING_CASES += [("seed", -1), ("seed", SEED_MAX + 1), ("mlm_probability", 0), ("mask_replace_prob", 1.5)]


@pytest.mark.parametrize("name,value", MASKING_CASES, ids=[f"{n}={str(v)[:12]}" for n, v in MASKING_CASES])
def test_every_masking_field_refuses_wrong_types_and_out_of_range_values(name, value):
    with pytest.raises(UserError) as err:
        MaskingConfig(**{name: value})
    assert len(str(err.value)) < 400 and LONG not in str(err.value)


def test_mask_preview_inputs_use_the_same_checks():
    with pytest.raises(UserError, match="Seed"):
        MaskingConfig.from_inputs("token", 0.15, 0.8, 0.1, 1e30)
    with pytest.raises(UserError, match="strategy"):
        MaskingConfig.from_inputs(True, 0.15, 0.8, 0.1, 1)
    assert MaskingConfig.from_inputs("whole word", "0.2", 0.8, 0.1, SEED_MAX).seed == SEED_MAX


@pytest.mark.parametrize("position, bad", [
    (0, 5), (0, ["imdb"]), (1, {"id": 1}), (3, 3.5), (4, ["bundled"]), (4, "m" * 5_000), (7, 12), (8, True),
])
def test_dataset_stats_arguments_are_checked_by_type(position, bad):
    """Every argument of /dataset_stats, a wrong type: a plain message naming the field, never raw text."""
    import gradio as gr

    from components import dataset

    args = ["imdb", "", None, "", "bundled", 128, 50, "", "label"]
    args[position] = bad
    with pytest.raises(gr.Error) as err:
        dataset.dataset_stats(*args)
    message = str(err.value)
    assert "must be" in message or "too long" in message
    assert "Traceback" not in message and "AttributeError" not in message and len(message) < 300


def test_a_number_box_value_is_echoed_as_the_user_typed_it():
    """Gradio's number boxes send floats: 10000000.0 is said back as 10,000,000, -1.0 as -1."""
    with pytest.raises(UserError, match=r"got 10,000,000\.$"):
        CostSettings(batch_size=10000000.0).validated()
    with pytest.raises(UserError, match=r"got -1\.$"):
        TrainConfig.from_dict({"learning_rate": -1.0})


@pytest.mark.parametrize("changes, message", [
    ({"epochs": 1e9}, "at most 1,000"),
    ({"max_steps": 10**12}, "at most 10,000,000"),
])
def test_a_run_that_would_outlive_the_machine_is_refused(changes, message):
    with pytest.raises(UserError, match=message):
        TrainConfig.from_dict(changes)


@pytest.mark.parametrize("changes, message", [
    ({"epochs": 1e9}, "Epochs must be at most 1,000"),
    ({"batch_size": 10**9}, "Batch size must be at most 65,536"),
    ({"train_size": 10**12}, "at most 10,000,000"),
])
def test_a_classifier_that_would_outlive_the_machine_is_refused(changes, message):
    from engine.training.classify import ClassifyConfig

    with pytest.raises(UserError, match=message):
        ClassifyConfig.from_dict(changes)


def test_classifying_with_a_model_that_is_not_a_classifier_names_it_as_given_not_its_folder():
    from components.classify_api import classify_with

    with pytest.raises(UserError) as err:
        classify_with(["bundled"], "A fine film.")
    assert str(err.value).startswith("'bundled': It is not a text classifier") and "/" not in str(err.value)


def test_a_bundled_corpus_keeps_its_name_and_says_so():
    from engine.data import store

    with pytest.raises(UserError, match="bundled with the app and keeps its name"):
        store.rename("imdb", "my reviews")


@pytest.mark.parametrize("names, message", [
    ("not-a-run", "Run not-a-run is not on this server"),  # one name as a string: the name, not its letters
    (5, "Models must be a list of names"),
    ([5, None, " "], "No model selected"),
])
def test_compare_reads_its_model_list_as_a_list(names, message):
    from engine.compare.side_by_side import model_specs

    with pytest.raises(UserError, match=message):
        model_specs(names)


def test_a_column_name_is_shown_literally_in_markdown():
    from components.common import code

    assert code("<b>x</b>") == "`<b>x</b>`" and code("a`b") == "`a\u2018b`"
