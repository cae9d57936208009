"""One source for every training setting: TrainConfig's fields. The CLI flags and the Train
tab's form derive from them, and validated() is the one check; a new hyperparameter is one
field plus one widget."""

from __future__ import annotations

import dataclasses

import gradio as gr
import pytest

from components import training_form
from components.training_form import CORPUS_WIDGETS, build_form, config_from_values, values_from_config
from engine.cli import train as cli
from engine.errors import UserError
from engine.training.config import TrainConfig, setting

SETTINGS = {f.name for f in dataclasses.fields(TrainConfig)} - {"corpus"}


def test_every_setting_is_a_cli_flag():
    flags = {a.dest for a in cli.parser()._actions}
    assert SETTINGS <= flags
    args = cli.parser().parse_args(["--method", "lora", "--lora-train-head", "--lr", "1e-3", "--lora-targets", "query"])
    cfg = cli.build_config(args)
    assert (cfg.lora_train_head, cfg.learning_rate, cfg.lora_targets) == (True, 1e-3, ["query"])
    assert cli.build_config(cli.parser().parse_args(["--no-whole-word-mask"])).whole_word_mask is False


def test_cli_numbers_get_the_apps_messages():
    with pytest.raises(UserError, match="Batch size must be a whole number, got '1.5'"):
        cli.build_config(cli.parser().parse_args(["--batch-size", "1.5"]))
    with pytest.raises(UserError, match="Learning rate must be a number, got 'fast'"):
        cli.build_config(cli.parser().parse_args(["--lr", "fast"]))


def test_every_setting_has_a_widget_and_survives_the_round_trip():
    with gr.Blocks():
        form = build_form(on_gpu=False)
    assert set(form.names) - set(CORPUS_WIDGETS) == SETTINGS
    saved = TrainConfig(method="lora", lora_targets=["query", "value"], lora_train_head=True, seed=7).to_dict()
    values = values_from_config(form.names, saved)
    assert config_from_values(form.names, values).to_dict() == saved


@dataclasses.dataclass
class WithSmoothing(TrainConfig):
    """What adding a hyperparameter takes: the field (its widget is the other edit)."""

    label_smoothing: float = setting(0.0, "share of the target's probability spread over the vocabulary",
                                     minimum=0, below=1)


def test_a_new_field_reaches_the_cli_the_form_and_validation(monkeypatch):
    monkeypatch.setattr(cli, "TrainConfig", WithSmoothing)
    monkeypatch.setattr(training_form, "TrainConfig", WithSmoothing)
    cfg = cli.build_config(cli.parser().parse_args(["--label-smoothing", "0.1"]))
    assert cfg.label_smoothing == 0.1
    with pytest.raises(UserError, match=r"Label smoothing must be in \[0, 1\), got 1\."):
        cli.build_config(cli.parser().parse_args(["--label-smoothing", "1"]))
    with gr.Blocks():
        form = build_form(on_gpu=False)
        form.widgets["label_smoothing"] = gr.Number(0.0)  # the one widget line in build_form
    values = values_from_config(form.names, {**cfg.to_dict(), "label_smoothing": 0.2})
    assert config_from_values(form.names, values).label_smoothing == 0.2
