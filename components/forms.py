"""Name -> widget forms: a tab's widgets keyed by the field names of a dataclass.

Events then talk to widgets by name instead of by position, so adding a field cannot shift
every argument or output after it:

    form = Form(Settings)
    form["lora_r"] = gr.Number(8)                      # a name the dataclass does not have fails here
    btn.click(fn, form.inputs, ...)                     # positional, in the dataclass's field order
    btn.click(fn, inputs_kwargs=form.kwargs, ...)       # fn(**values): the names also name an API's parameters
    return form.updates(settings)                       # {widget: value}, which Gradio accepts as a return

Nothing here knows about a particular tab; the tab modules own their dataclasses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import field, fields, is_dataclass
from typing import Any

import gradio as gr
from gradio.components import Component


class Form:
    """Widgets for the fields of `cls` (and for `extra` names a handler maps itself)."""

    def __init__(self, cls: type, extra: Iterable[str] = ()):
        self.cls = cls
        self.order = [f.name for f in fields(cls)] + list(extra)
        self.widgets: dict[str, Component] = {}

    def __setitem__(self, name: str, widget: Component) -> None:
        if name not in self.order:
            raise KeyError(f"{self.cls.__name__} has no field {name!r}")
        self.widgets[name] = widget

    def __getitem__(self, name: str) -> Component:
        return self.widgets[name]

    @property
    def names(self) -> list[str]:
        """The names that have a widget, in the dataclass's field order (extra names last)."""
        return [n for n in self.order if n in self.widgets]

    @property
    def inputs(self) -> list[Component]:
        return [self.widgets[n] for n in self.names]

    outputs = inputs  # the same widgets, in the same order, when an event writes to them

    @property
    def kwargs(self) -> dict[str, Component]:
        """For an event's `inputs_kwargs`: the handler gets each value as a keyword argument,
        and a public endpoint's parameters take these names, in this order."""
        return {n: self.widgets[n] for n in self.names}

    def missing(self) -> list[str]:
        return [n for n in self.order if n not in self.widgets]

    def complete(self) -> Form:
        """This form, once every field has its widget (a forgotten widget fails at build time)."""
        if self.missing():
            raise TypeError(f"{self.cls.__name__} fields without a widget: {', '.join(self.missing())}")
        return self

    def values(self, args: Sequence) -> dict[str, Any]:
        """Positional event values (from `inputs`) by name."""
        return dict(zip(self.names, args))

    def updates(self, values: Mapping[str, Any] | Any) -> dict[Component, Any]:
        """{widget: value} for a dataclass instance or a name -> value mapping; names without a
        widget are an error, not silently dropped. Nothing to send is gr.skip(), since an
        empty dict would reach a single output as a value."""
        if is_dataclass(values):
            # not dataclasses.asdict: it deep-copies every value (plotly figures included)
            values = {f.name: getattr(values, f.name) for f in fields(values)}
        unknown = set(values) - set(self.widgets)
        if unknown:
            raise KeyError(f"no widget for {', '.join(sorted(unknown))} in the {self.cls.__name__} form")
        return {self.widgets[n]: v for n, v in values.items()} or gr.skip()


def skipped() -> Any:
    """A dataclass field defaulting to gr.skip() (a dict, so it needs a factory): a panel field left
    at it leaves its widget as it is."""
    return field(default_factory=gr.skip)
