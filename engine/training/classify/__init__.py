"""Classifier runs: a task model (sentiment, topics, ...) from a base or an adapted MLM.

The face re-exports lazily (PEP 562), like engine.training's: importing the config never
drags in torch's training stack.
"""

from __future__ import annotations

import importlib

_FACE = {
    "ClassifyConfig": "config", "LEARNING_RATE_GUIDANCE": "config", "DEFAULT_LR": "config",
    "train_classifier": "loop", "classify_texts": "infer", "TEXTBOOK_SENTENCES": "infer",
    "MAX_TEXTS": "infer", "preflight": "infer",
}
__all__ = sorted(_FACE)


def __getattr__(name: str):
    if name in _FACE:
        return getattr(importlib.import_module(f"{__name__}.{_FACE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
