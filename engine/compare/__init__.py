"""Models side by side: fill-mask, the prompt table, perplexity, the model cache, the downstream probe.

The face re-exports lazily (PEP 562): `from engine.compare import ModelCache` works, and importing
one submodule never drags in the others (the web server imports configs without torch's
training stack, and no package face can close an import cycle).
"""

from __future__ import annotations

from engine.faces import lazy

# name -> the submodule that defines it. A name never equals a submodule's name: once that
# submodule is imported, the package attribute would be the module, not the name.
_FACE = {
    'Column': 'side_by_side',
    'CompareResult': 'side_by_side',
    'FillMaskResult': 'predictions',
    'MAX_SEEDS': 'payoff',
    'MAX_TOP_K': 'predictions',
    'MIN_SEEDS': 'payoff',
    'ModelCache': 'model_cache',
    'PRESETS': 'predictions',
    'ProbeConfig': 'downstream',
    'RecallConfig': 'recall',
    'View': 'model_cache',
    'downstream_check': 'downstream',
    'downstream_with_payoffs': 'downstream',
    'fill_mask': 'predictions',
    'human_bytes': 'model_cache',
    'normalize': 'predictions',
    'paired_payoff': 'payoff',
    'payoff_from_runs': 'payoff',
    'plan_payoff': 'payoff',
    'result_rows': 'predictions',
    'shared_cache': 'model_cache',
    'word_recall': 'recall',
}
_MODULES = ('side_by_side',)  # submodules callers use as a namespace (`from engine.compare import X`)
__all__ = sorted(_FACE) + list(_MODULES)

__getattr__ = lazy(__name__, _FACE)
