"""Training tab (being built)."""

import gradio as gr


def render(demo: gr.Blocks) -> None:
    gr.Markdown("Training: coming soon.")
