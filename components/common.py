"""Small helpers the tab modules share: error translation and the offline banner."""

from __future__ import annotations

import functools
import html
import logging

import gradio as gr

from engine.errors import UserError, plain
from engine.offline import cached_repos, is_offline

log = logging.getLogger(__name__)


def user_errors(fn):
    """Every error as a plain gr.Error toast, never raw exception text (which can carry server
    paths and library internals): a UserError's own message, a disk error's reason, else the
    error's kind, with the traceback in the server's log. The server keeps serving."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except UserError as exc:
            # A user's mistake is one log line, not a traceback: real failures must stand out.
            log.info("refused in %s: %s", getattr(fn, "__name__", fn), exc)
            raise toast(str(exc)) from exc
        except Exception as exc:  # noqa: BLE001 - the boundary: nothing raw reaches a user
            if isinstance(exc, OSError | RecursionError):
                log.warning("%s in %s: %s", type(exc).__name__, getattr(fn, "__name__", fn), exc)
            else:
                log.exception("unexpected error in %s", getattr(fn, "__name__", fn))  # the one traceback
            raise toast(plain(exc)) from exc

    return wrapper


def table(label: str, columns, **kwargs) -> gr.Dataframe:
    """A read-only table that shows its real column names before its first result and after an
    empty one (Gradio's own placeholder headers are "1 | 2 | 3", which reads as broken)."""
    return gr.Dataframe(headers=list(columns), label=label, interactive=False, **kwargs)


# What a tokenizer's own piece markers mean, for readers who have only met one of them.
PIECE_MARKS = {"Ġ": "Ġ begins a token that follows a space (byte-level BPE: RoBERTa, ModernBERT)",
               "##": "## continues the word before it (WordPiece: BERT)",
               "▁": "▁ begins a token that follows a space (SentencePiece)"}


def piece_marks(tokens) -> str:
    """One line explaining the piece markers these tokens use ("" when none)."""
    tokens = [str(t) for t in tokens]
    used = [text for mark, text in PIECE_MARKS.items() if any(t.startswith(mark) for t in tokens)]
    return "; ".join(used)


def code(text) -> str:
    """A user's text (a column name) as a Markdown code span: shown literally, so not HTML-escaped
    (that showed "&lt;b&gt;"), with its backticks replaced so it cannot close the span early."""
    return f"`{str(text).replace('`', chr(0x2018))}`"


def toast(message: str) -> gr.Error:
    """An error toast whose traceback Gradio does not print (the caller logs what matters). The
    toast renders its message as HTML: escaped, so a "<mask>" in a message does not vanish."""
    return gr.Error(html.escape(message, quote=False), print_exception=False)


def mode_banner() -> str:
    if is_offline():
        from engine.models import ONLINE_DEFAULT, default_model_ref

        if default_model_ref() == ONLINE_DEFAULT:
            return (
                "**Offline mode**: the Hugging Face Hub is not reachable, so the app uses what is in the local "
                f"cache: `{ONLINE_DEFAULT}` is cached and is the default model. " + cached_line()
            )
        return (
            "**Offline mode**: the Hugging Face Hub is not reachable, so the app uses the bundled "
            "IMDb corpus and the bundled all-MiniLM-L6-v2 encoder (its MLM head is untrained until fine-tuned)."
        )
    return "**Online**: defaults are `distilbert-base-uncased` and IMDb from the Hub, as in the course."


def cached_line(kind: str = "") -> str:
    """What the local Hugging Face cache holds, for a line under a model picker or a Hub dataset box.

    kind "model" or "dataset" lists only those; "" lists both. Offline, exactly these ids load.
    """
    kinds = [kind] if kind else ["model", "dataset"]
    parts = [f"{k}s: {', '.join(ids)}" for k in kinds if (ids := cached_repos(k))]
    return "Cached on this machine (usable offline): " + ("; ".join(parts) if parts else "nothing") + "."


def chunk_hint(model: str):
    """The chunk-size field's hint for this model: its longest chunk (8,192 for ModernBERT), read
    from its config; left as it is when the model cannot be read (the action then says why)."""
    from engine.models import max_length_of
    from engine.numbers import MIN_CHUNK

    try:
        longest = max_length_of((model or "").strip() or "bundled")
    except UserError:
        return gr.skip()
    long_note = "; a long-context model: 1,024 to 8,192-token chunks keep whole documents" if longest > 512 else ""
    return gr.Number(info=f"{MIN_CHUNK} to {longest:,} tokens for this model{long_note}")
