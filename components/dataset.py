"""Dataset tab (being built)."""

import gradio as gr


def render() -> None:
    gr.Markdown("Dataset: coming soon.")
