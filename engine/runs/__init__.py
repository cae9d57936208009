"""Runs as jobs: submit, queue, the worker process, owners, cancel/resume, export.

The face re-exports lazily (PEP 562): `from engine.runs import submit` works, and importing
one submodule never drags in the others (the web server imports configs without torch's
training stack, and no package face can close an import cycle).
"""

from __future__ import annotations

from engine.faces import lazy

# name -> the submodule that defines it. A name never equals a submodule's name: once that
# submodule is imported, the package attribute would be the module, not the name.
_FACE = {
    'DuplicateSubmission': 'jobs',
    'RunQueue': 'queue',
    'browser_secret': 'owners',
    'cancel': 'jobs',
    'describe': 'eta',
    'estimate': 'eta',
    'finished_runs': 'experiments',
    'list_experiments': 'experiments',
    'list_runs': 'jobs',
    'new_owner_token': 'owners',
    'owner_key': 'owners',
    'payoff_report': 'experiments',
    'registry': 'jobs',
    'resolve_classifier': 'experiments',
    'resolve_start': 'experiments',
    'resume': 'jobs',
    'start_payoff': 'experiments',
    'status': 'jobs',
    'submit': 'jobs',
}
_MODULES = ('export', 'jobs')  # submodules callers use as a namespace (`from engine.runs import X`)
__all__ = sorted(_FACE) + list(_MODULES)

__getattr__ = lazy(__name__, _FACE)
