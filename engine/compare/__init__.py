"""Models side by side: fill-mask, the prompt table, perplexity, the model cache, the downstream probe.

The face re-exports lazily (PEP 562): `from engine.compare import ModelCache` works, and importing
one submodule never drags in the others (the web server imports configs without torch's
training stack, and no package face can close an import cycle).
"""

from __future__ import annotations

import importlib

_FACE = {'ModelCache': 'model_cache', 'paired_payoff': 'payoff', 'plan_payoff': 'payoff',
         'payoff_from_runs': 'payoff'}
__all__ = sorted(_FACE)


def __getattr__(name: str):
    if name in _FACE:
        return getattr(importlib.import_module(f"{__name__}.{_FACE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
