"""The LoRA-versus-full cost estimate: architectures, parameters, activations, memory,
FLOPs/time, GPU presets, calibration.

The face re-exports lazily (PEP 562): `from engine.costs import CostSettings` works, and importing
one submodule never drags in the others (the web server imports configs without torch's
training stack, and no package face can close an import cycle).
"""

from __future__ import annotations

from engine.faces import lazy

# name -> the submodule that defines it. A name never equals a submodule's name: once that
# submodule is imported, the package attribute would be the module, not the name.
_FACE = {
    'ALL_LINEAR': 'arch',
    'ARCH_CHOICES': 'arch',
    'CostSettings': 'calculator',
    'DEFAULT_GPU': 'gpus',
    'DEFAULT_UTILISATION': 'flops',
    'GpuPreset': 'gpus',
    'MAX_BATCH': 'fits',
    'OPTIMIZER_LABELS': 'memory',
    'PARTS': 'memory',
    'PART_LABELS': 'memory',
    'PRECISION_LABELS': 'calculator',
    'PRESETS': 'gpus',
    'bundled_corpus_tokens': 'calculator',
    'estimate': 'calculator',
    'finished_runs': 'calibrate',
    'load_arch': 'arch',
    'preset': 'gpus',
    'settings_from_estimate': 'fits',
    'target_presets': 'arch',
    'what_fits': 'fits',
}
_MODULES = ()  # submodules callers use as a namespace (`from engine.costs import X`)
__all__ = sorted(_FACE) + list(_MODULES)

__getattr__ = lazy(__name__, _FACE)
