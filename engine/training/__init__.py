"""One training run: TrainConfig, the loop, batches, eval set, optimizer, LoRA, checkpoints, preflight, CPU speed-ups.

The face re-exports lazily (PEP 562): `from engine.training import TrainConfig` works, and importing
one submodule never drags in the others (the web server imports configs without torch's
training stack, and no package face can close an import cycle).
"""

from __future__ import annotations

import importlib

_FACE = {'TrainConfig': 'config', 'train': 'loop', 'check_runnable': 'preflight',
         'ClassifyConfig': 'classify.config', 'train_classifier': 'classify.loop'}
__all__ = sorted(_FACE)


def __getattr__(name: str):
    if name in _FACE:
        return getattr(importlib.import_module(f"{__name__}.{_FACE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
