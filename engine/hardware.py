"""What the machine under the app can do, read from the (Space) environment.

Five modes:

- ``local-cpu`` / ``local-gpu``: not on a Space. No training limits unless the
  ``MLM_CPU_*`` variables below are set (they are the user's own choice then).
- ``space-cpu``: a Space on CPU hardware (cpu-basic has 2 vCPUs). Training is allowed
  but capped in size, steps and time so one visitor cannot hold the machine for hours;
  the caps come from environment variables (Space settings -> Variables) with defaults.
- ``space-gpu``: a Space on dedicated GPU hardware. No caps.
- ``zerogpu``: ZeroGPU attaches a GPU only inside short ``@spaces.GPU(duration=...)``
  calls, and the worker process of a background run is outside any such call, so
  training is disabled here with a link to duplicate the Space onto dedicated hardware.

Runs persist across restarts only where the runs folder does: a Space's own disk is
wiped on restart, a storage bucket mounted at /data is not (engine.run_folder.runs_dir
prefers /data/runs when it is writable).

No torch import at module level: the ZeroGPU check must come before anything touches
CUDA (the ``spaces`` package has to patch torch first), and tests stay light.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import UserError
from engine.numbers import number as parse_number

if TYPE_CHECKING:
    from engine.training.config import TrainConfig

KINDS = ("local-cpu", "local-gpu", "space-cpu", "space-gpu", "zerogpu")

# (variable, TrainingLimits field, default on CPU Space hardware)
LIMIT_VARS = (
    ("MLM_CPU_MAX_TRAIN_CHUNKS", "max_train_chunks", 2000),
    ("MLM_CPU_MAX_TEST_CHUNKS", "max_test_chunks", 500),
    ("MLM_CPU_MAX_STEPS", "max_steps", 300),
    ("MLM_CPU_MAX_MINUTES", "max_minutes", 20.0),
)
_UNLIMITED = {"0", "none", "off", "unlimited", "no"}
_TRUTHY = {"1", "t", "true", "yes", "on"}


@dataclass(frozen=True)
class TrainingLimits:
    """Caps on one training run; None means no cap."""

    max_train_chunks: int | None = None
    max_test_chunks: int | None = None
    max_steps: int | None = None
    max_minutes: float | None = None

    @property
    def time_limit_s(self) -> float | None:
        """Seconds a run may train before it stops at a checkpoint (None: no limit)."""
        return None if self.max_minutes is None else self.max_minutes * 60.0

    @property
    def active(self) -> bool:
        caps = (self.max_train_chunks, self.max_test_chunks, self.max_steps, self.max_minutes)
        return any(v is not None for v in caps)

    def describe(self) -> str:
        parts = []
        if self.max_train_chunks is not None:
            parts.append(f"{self.max_train_chunks:,} training chunks")
        if self.max_test_chunks is not None:
            parts.append(f"{self.max_test_chunks:,} evaluation chunks")
        if self.max_steps is not None:
            parts.append(f"{self.max_steps:,} optimizer steps")
        if self.max_minutes is not None:
            parts.append(f"{self.max_minutes:g} minutes")
        return ", ".join(parts) if parts else "no limits"


@dataclass(frozen=True)
class HardwareMode:
    on_space: bool
    kind: str  # one of KINDS
    training_allowed: bool
    reason: str  # one sentence for the UI: what was detected and what it means
    limits: TrainingLimits = field(default_factory=TrainingLimits)
    space_id: str | None = None
    accelerator: str = ""  # the ACCELERATOR variable as found, for the record
    persistent: bool = True  # do runs survive a restart?
    warnings: tuple[str, ...] = ()  # e.g. a limit variable that did not parse

    @property
    def duplicate_url(self) -> str | None:
        """The Hub's "Duplicate this Space" link (None when not on a Space)."""
        return f"https://huggingface.co/spaces/{self.space_id}?duplicate=true" if self.space_id else None

    @property
    def on_gpu(self) -> bool:
        return self.kind in ("local-gpu", "space-gpu")


def detect(
    env: Mapping[str, str] | None = None,
    cuda_available: Callable[[], bool] | None = None,
    runs_root: Path | None = None,
) -> HardwareMode:
    """Read SPACE_ID, SPACES_ZERO_GPU, ACCELERATOR and CUDA; arguments are for tests."""
    env = os.environ if env is None else env
    space_id = env.get("SPACE_ID") or None
    on_space = space_id is not None
    accelerator = env.get("ACCELERATOR", "").strip()
    persistent = persistent_storage(on_space, runs_root)
    common = dict(on_space=on_space, space_id=space_id, accelerator=accelerator, persistent=persistent)

    # ZeroGPU first and without touching torch.cuda: CUDA must not initialise before `spaces` loads.
    if env.get("SPACES_ZERO_GPU", "").strip().lower() in _TRUTHY or "zero" in accelerator.lower():
        return HardwareMode(kind="zerogpu", training_allowed=False, reason=ZEROGPU_REASON, **common)

    has_cuda = (cuda_available or _torch_cuda_available)()
    where = "Space" if on_space else "local machine"
    if has_cuda:
        kind = "space-gpu" if on_space else "local-gpu"
        reason = f"GPU {where}: training runs without limits."
        return HardwareMode(kind=kind, training_allowed=True, reason=reason, **common)

    limits, warnings = read_limits(env, defaults=on_space)
    reason = f"CPU {where}: " + (
        f"training is capped at {limits.describe()} per run." if limits.active else "training runs without limits."
    )
    if accelerator and accelerator.lower() not in ("cpu", "none"):
        # e.g. a CPU-only torch build on GPU hardware: the run would really train on the CPU.
        reason += f" (ACCELERATOR={accelerator}, but torch sees no CUDA device.)"
    kind = "space-cpu" if on_space else "local-cpu"
    return HardwareMode(kind=kind, training_allowed=True, reason=reason, limits=limits, warnings=warnings, **common)


ZEROGPU_REASON = (
    "Training is disabled on ZeroGPU hardware: ZeroGPU lends a GPU only for short calls "
    "(a few minutes inside @spaces.GPU), while a fine-tuning run trains in a background process "
    "for much longer. Duplicate this Space and pick dedicated hardware (a T4 or better, or CPU "
    "with limits) to train; exploring, masking, comparing and pricing work here."
)


def _torch_cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def read_limits(env: Mapping[str, str], defaults: bool) -> tuple[TrainingLimits, tuple[str, ...]]:
    """Limits from MLM_CPU_* variables; `defaults` fills unset ones (CPU Space hardware).

    A value that does not parse keeps the default and yields a warning instead of an
    exception: a typo in a Space variable should not take the whole app down.
    """
    values: dict[str, float | int | None] = {}
    warnings = []
    for var, name, default in LIMIT_VARS:
        raw = env.get(var, "").strip()
        fallback = default if defaults else None
        if not raw:
            values[name] = fallback
            continue
        if raw.lower() in _UNLIMITED:
            values[name] = None
            continue
        try:
            number = parse_number(raw, var, whole=isinstance(default, int))
            if number <= 0:
                raise UserError(var)
        except UserError:
            warnings.append(f"{var}={raw!r} is not a positive number (or 0/none for no limit); using {fallback}.")
            number = fallback
        values[name] = number
    return TrainingLimits(**values), tuple(warnings)


def planned_steps(cfg: TrainConfig) -> int | None:
    """Optimizer steps the config asks for (None when it trains on 'all' chunks of unknown count)."""
    if cfg.max_steps > 0:
        return cfg.max_steps
    if cfg.train_size <= 0:
        return None
    batches = math.ceil(cfg.train_size / max(cfg.batch_size, 1))
    return math.ceil(math.ceil(batches / max(cfg.grad_accum_steps, 1)) * cfg.epochs)


def apply_limits(cfg: TrainConfig, mode: HardwareMode) -> tuple[TrainConfig, list[str]]:
    """Clamp a TrainConfig to the mode's limits; return the new config and what changed.

    The input config is not modified. On ZeroGPU this raises UserError (training is
    disabled there), so the Train tab's start handler can call it unconditionally.
    """
    if not mode.training_allowed:
        link = f" Duplicate it: {mode.duplicate_url}" if mode.duplicate_url else ""
        raise UserError(mode.reason + link)
    lim = mode.limits
    changes: dict = {}
    notices: list[str] = []
    hint = "on this hardware" if mode.on_space else "by the MLM_CPU_* settings"
    for name, cap, what, var in (
        ("train_size", lim.max_train_chunks, "Training chunks", "MLM_CPU_MAX_TRAIN_CHUNKS"),
        ("test_size", lim.max_test_chunks, "Evaluation chunks", "MLM_CPU_MAX_TEST_CHUNKS"),
    ):
        asked = getattr(cfg, name)
        if cap is not None and (asked == 0 or asked > cap):
            changes[name] = cap
            shown = "all" if asked == 0 else f"{asked:,}"
            # the corpus is not chunked yet: say what the cap allows, not that chunks were cut
            notices.append(f"{what}: at most {cap:,} {hint} (the setting asked for {shown}; a smaller corpus "
                           f"uses all of its chunks; {var} sets the cap).")
    if lim.max_steps is not None:
        steps = planned_steps(replace(cfg, **changes))
        if steps is None or steps > lim.max_steps:
            changes["max_steps"] = lim.max_steps
            shown = "an unknown number of" if steps is None else f"{steps:,}"
            notices.append(
                f"Training stops after {lim.max_steps:,} optimizer steps {hint} "
                f"(this run asks for {shown}; MLM_CPU_MAX_STEPS sets the cap)."
            )
    if lim.time_limit_s is not None:
        notices.append(
            f"Runs stop after {lim.max_minutes:g} minutes {hint} (MLM_CPU_MAX_MINUTES sets the limit); "
            "resuming continues from the last checkpoint."
        )
    return (replace(cfg, **changes) if changes else cfg), notices


def deadline(mode: HardwareMode, started_at: float | None = None) -> Callable[[], bool] | None:
    """A should_stop callable for training.train() that turns True after the time limit."""
    limit = mode.limits.time_limit_s
    if limit is None:
        return None
    end = (time.monotonic() if started_at is None else started_at) + limit
    return lambda: time.monotonic() >= end


def persistent_storage(on_space: bool | None = None, runs_root: Path | None = None) -> bool:
    """Do runs survive a restart? Locally yes; on a Space only under a mounted /data."""
    if on_space is None:
        on_space = bool(os.environ.get("SPACE_ID"))
    if not on_space:
        return True
    if runs_root is None:
        from engine.run_folder import runs_dir

        runs_root = runs_dir()
    return Path(runs_root).resolve().is_relative_to(Path("/data").resolve())


def storage_message(mode: HardwareMode) -> str:
    if not mode.on_space:
        return "Runs are saved in the local runs folder and survive a restart."
    if mode.persistent:
        return "Runs are saved in the storage bucket mounted at /data and survive a restart of the Space."
    return (
        "Runs are saved on the Space's own disk, which is wiped when the Space restarts or sleeps: "
        "download what you want to keep, or mount a storage bucket at /data to keep runs."
    )


KIND_TITLES = {
    "local-cpu": "Local machine, CPU",
    "local-gpu": "Local machine, GPU",
    "space-cpu": "Space on CPU hardware",
    "space-gpu": "Space on GPU hardware",
    "zerogpu": "Space on ZeroGPU",
}


def banner_markdown(mode: HardwareMode) -> str:
    """A few Markdown lines for the top of the app / the Train tab."""
    lines = [f"**Hardware: {KIND_TITLES[mode.kind]}.** {mode.reason}"]
    if mode.kind == "zerogpu" and mode.duplicate_url:
        lines.append(f"[Duplicate this Space]({mode.duplicate_url}) to train on dedicated hardware.")
    elif mode.limits.active and not mode.on_space:  # a Space's visitors cannot set variables; its owner reads README
        lines.append(
            "Limits come from the MLM_CPU_MAX_TRAIN_CHUNKS, MLM_CPU_MAX_TEST_CHUNKS, MLM_CPU_MAX_STEPS and "
            "MLM_CPU_MAX_MINUTES variables (0 or none = no limit)."
        )
    lines.append(storage_message(mode))
    lines.extend(f"Warning: {w}" for w in mode.warnings)
    return "\n\n".join(lines)
