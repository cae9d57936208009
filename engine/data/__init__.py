"""Corpora: bundled, Hub and uploaded sources, tokenize and chunk, statistics, shredded words.

The face re-exports lazily (PEP 562): `from engine.data import CorpusConfig` works, and importing
one submodule never drags in the others (the web server imports configs without torch's
training stack, and no package face can close an import cycle).
"""

from __future__ import annotations

from engine.faces import lazy

# name -> the submodule that defines it. A name never equals a submodule's name: once that
# submodule is imported, the package attribute would be the module, not the name.
_FACE = {
    'BUNDLED_SOURCES': 'corpus',
    'CorpusConfig': 'corpus',
    'MAX_UPLOAD_MB': 'uploads',
    'SPLIT_COLUMNS': 'shredded',
    'SUPPORTED': 'uploads',
    'config_for': 'corpus',
    'describe_upload': 'uploads',
    'limits_text': 'uploads',
    'list_corpora': 'store',
    'load_corpus': 'corpus',
    'load_hub': 'corpus',
    'prepare': 'corpus',
    'split_words': 'shredded',
    'tokenize_corpus': 'corpus',
}
_MODULES = ('stats', 'store')  # submodules callers use as a namespace (`from engine.data import X`)
__all__ = sorted(_FACE) + list(_MODULES)

__getattr__ = lazy(__name__, _FACE)
