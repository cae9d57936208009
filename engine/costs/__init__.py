"""The LoRA-versus-full cost estimate: architectures, parameters, activations, memory,
FLOPs/time, GPU presets, calibration.

The face re-exports lazily (PEP 562): `from engine.costs import CostSettings` works, and importing
one submodule never drags in the others (the web server imports configs without torch's
training stack, and no package face can close an import cycle).
"""

from __future__ import annotations

import importlib

_FACE = {'CostSettings': 'estimate', 'estimate': 'estimate', 'PRESETS': 'gpus', 'GpuPreset': 'gpus'}
__all__ = sorted(_FACE)


def __getattr__(name: str):
    if name in _FACE:
        return getattr(importlib.import_module(f"{__name__}.{_FACE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
