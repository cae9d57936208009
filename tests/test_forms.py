"""components/forms.py: widgets by dataclass field name, event values by name, {widget: value} returns."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import pytest

from components.forms import Form


@dataclass
class Knobs:
    rank: int = 8
    alpha: float = 16.0
    name: str = "x"


def knobs_form() -> Form:
    with gr.Blocks():
        form = Form(Knobs, extra=("source",))
        form["name"] = gr.Textbox()  # created out of field order on purpose
        form["rank"] = gr.Number()
        form["source"] = gr.Dropdown(["a", "b"])
    return form


def test_names_follow_the_dataclass_and_unknown_names_are_refused():
    form = knobs_form()
    assert form.names == ["rank", "name", "source"]  # field order, extra names last
    assert form.inputs == [form["rank"], form["name"], form["source"]] == form.outputs
    assert list(form.kwargs) == form.names
    assert form.missing() == ["alpha"]
    with pytest.raises(TypeError, match="alpha"):
        form.complete()
    with pytest.raises(KeyError, match="no field 'rnak'"):
        form["rnak"] = gr.Number(render=False)


def test_values_by_name_and_updates_keyed_by_widget():
    form = knobs_form()
    assert form.values([4, "y", "b"]) == {"rank": 4, "name": "y", "source": "b"}
    assert form.updates({"rank": 2, "source": "a"}) == {form["rank"]: 2, form["source"]: "a"}
    with pytest.raises(KeyError, match="alpha"):
        form.updates(Knobs())  # every field of the instance needs a widget
    assert form.updates({}) == gr.skip()  # nothing to send: skip every output


def test_a_complete_form_updates_from_a_dataclass_without_copying_values():
    with gr.Blocks():
        form = Form(Knobs)
        for name in ("rank", "alpha", "name"):
            form[name] = gr.Textbox()
    value = Knobs(name="same object")
    updates = form.complete().updates(value)
    assert updates[form["name"]] is value.name and updates[form["rank"]] == 8
