"""Compare tab (being built)."""

import gradio as gr


def render(demo: gr.Blocks) -> None:
    gr.Markdown("Compare: coming soon.")
