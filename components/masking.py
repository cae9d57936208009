"""Masking tab (being built)."""

import gradio as gr


def render() -> None:
    gr.Markdown("Masking: coming soon.")
