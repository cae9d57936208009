"""Costs tab (being built)."""

import gradio as gr


def render() -> None:
    gr.Markdown("Costs: coming soon.")
