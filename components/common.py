"""Small helpers the tab modules share: error translation and the offline banner."""

from __future__ import annotations

import functools
import html

import gradio as gr

from engine.errors import UserError
from engine.offline import is_offline


def user_errors(fn):
    """Show engine.UserError as a gr.Error toast instead of a traceback; the server keeps serving."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            # The toast renders its message as HTML: a "<mask>" in a message would vanish.
            raise gr.Error(html.escape(str(exc), quote=False)) from exc

    return wrapper


def mode_banner() -> str:
    if is_offline():
        return (
            "**Offline mode**: the Hugging Face Hub is not reachable, so the app uses the bundled "
            "IMDb corpus and the bundled all-MiniLM-L6-v2 encoder (its MLM head is untrained until fine-tuned)."
        )
    return "**Online**: defaults are `distilbert-base-uncased` and IMDb from the Hub, as in the course."
