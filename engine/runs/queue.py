"""First-in first-out scheduling of runs onto a fixed number of worker slots.

Plain bookkeeping, no threads and no I/O of its own: engine.runs.jobs holds the lock, calls
`next_to_start()` when a slot frees up and starts the worker it names.
(Named run_queue, not queue, so it never shadows the standard library module.)
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.numbers import env_number
from engine.runs.process import WorkerHandle


def max_concurrent_default() -> int:
    return env_number("MLM_MAX_CONCURRENT_RUNS", 1, minimum=1)


@dataclass
class Waiting:
    run_id: str
    resume: bool


class RunQueue:
    """Runs waiting for a slot, in arrival order, and the workers holding the slots."""

    def __init__(self, max_concurrent: int | None = None):
        self.max_concurrent = max(1, max_concurrent or max_concurrent_default())
        self.waiting: list[Waiting] = []
        self.running: dict[str, WorkerHandle] = {}

    def push(self, run_id: str, resume: bool = False) -> int:
        """Append a run; returns its 1-based position among the waiting runs."""
        if not any(w.run_id == run_id for w in self.waiting):
            self.waiting.append(Waiting(run_id, resume))
        return self.position(run_id) or 0

    def position(self, run_id: str) -> int | None:
        """1 = next to start; None when the run is not waiting."""
        for i, w in enumerate(self.waiting):
            if w.run_id == run_id:
                return i + 1
        return None

    def remove(self, run_id: str) -> bool:
        before = len(self.waiting)
        self.waiting = [w for w in self.waiting if w.run_id != run_id]
        return len(self.waiting) < before

    def free_slots(self) -> int:
        return max(0, self.max_concurrent - len(self.running))

    def next_to_start(self) -> Waiting | None:
        """Pop the oldest waiting run when a slot is free."""
        if self.waiting and self.free_slots() > 0:
            return self.waiting.pop(0)
        return None
