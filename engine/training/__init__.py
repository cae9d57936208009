"""One training run: TrainConfig, the loop, batches, eval set, optimizer, LoRA, checkpoints, preflight, CPU speed-ups.

The face re-exports lazily (PEP 562): `from engine.training import TrainConfig` works, and importing
one submodule never drags in the others (the web server imports configs without torch's
training stack, and no package face can close an import cycle).
"""

from __future__ import annotations

from engine.faces import lazy

# name -> the submodule that defines it. A name never equals a submodule's name: once that
# submodule is imported, the package attribute would be the module, not the name.
_FACE = {
    'COMPILE_MODES': 'config',
    'ClassifyConfig': 'classify.config',
    'MAX_PROMPTS': 'pinned',
    'NAME_MAX': 'config',
    'NOTES_MAX': 'config',
    'PRECISIONS': 'config',
    'TrainConfig': 'config',
    'check_runnable': 'preflight',
    'default_batch_size': 'config',
    'default_lora_targets': 'preflight',
    'default_lr': 'config',
    'train': 'loop',
    'train_classifier': 'classify.loop',
}
_MODULES = ('lora',)  # submodules callers use as a namespace (`from engine.training import X`)
__all__ = sorted(_FACE) + list(_MODULES)

__getattr__ = lazy(__name__, _FACE)
