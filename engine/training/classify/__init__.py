"""Classifier runs: a task model (sentiment, topics, ...) from a base or an adapted MLM.

The face re-exports lazily (PEP 562), like engine.training's: importing the config never
drags in torch's training stack.
"""

from __future__ import annotations

from engine.faces import lazy

# name -> the submodule that defines it. A name never equals a submodule's name: once that
# submodule is imported, the package attribute would be the module, not the name.
_FACE = {
    'ClassifyConfig': 'config',
    'DEFAULT_LR': 'config',
    'LEARNING_RATE_GUIDANCE': 'config',
    'MAX_TEXTS': 'infer',
    'TEXTBOOK_LR': 'config',
    'TEXTBOOK_SENTENCES': 'infer',
    'build_classifier': 'model',
    'check_texts': 'infer',
    'classify_texts': 'infer',
    'lora_note': 'report',
    'preflight': 'infer',
    'train_classifier': 'loop',
    'wrap_lora': 'model',
}
_MODULES = ()  # submodules callers use as a namespace (`from engine.training.classify import X`)
__all__ = sorted(_FACE) + list(_MODULES)

__getattr__ = lazy(__name__, _FACE)
