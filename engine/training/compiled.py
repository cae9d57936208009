"""The compiled training step (TrainConfig.compile): torch.compile of the loss, CUDA graphs
where the shapes are fixed, and no wait for the device inside a step.

Why: at BERT-base size and batch 64 an eager step on an H200 spends much of its time
launching small kernels and waiting for the host (the masked-row count that
engine.mlm_head reads back, the boolean indexing after it). Here the loss is
engine.mlm_head.static_masked_lm_loss, whose shapes are fixed by the chunk length and a
masked-row *capacity* known on the host (engine.training.batches counts each epoch's
masked tokens on the CPU before they go to the device), so torch.compile traces one graph
and, in "cudagraphs" mode, replays the whole forward and backward as one CUDA graph.

Modes: "off" (eager, the default: compiling takes a minute on a GPU, longer than a short
run gains), "on" (torch.compile, inductor's default mode), "cudagraphs" (mode
"reduce-overhead"; on a CPU the same as "on"). A micro-batch of another shape (the last,
short one of an epoch) runs eager. If compiling fails, the run says why in its log and
carries on eager.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from engine.errors import UserError
from engine.training.config import COMPILE_MODES

CAPACITY_MULTIPLE = 128  # masked-row capacities are rounded up to this: few distinct shapes
CAPACITY_HEADROOM = 1.03  # a later epoch's count is rarely more than 3% above the first one's


def capacity_for(max_masked: int, current: int = 0) -> int:
    """The masked-row capacity for an epoch whose largest micro-batch has max_masked masked
    tokens: never lower than the current one, so a capacity (and its graph) is reused."""
    if max_masked <= current:
        return current
    return max(CAPACITY_MULTIPLE, math.ceil(max_masked * CAPACITY_HEADROOM / CAPACITY_MULTIPLE) * CAPACITY_MULTIPLE)


def _torch_mode(mode: str, device: torch.device) -> str:
    return "reduce-overhead" if mode == "cudagraphs" and device.type == "cuda" else "default"


class CompiledStep:
    """forward + backward of one micro-batch through the compiled objective.

    `objective(input_ids, labels, capacity)` must compute the static masked loss (the
    loop's MaskedLMObjective does when given a capacity); `backward(loss)` is the loop's
    (accelerate's, which scales for fp16)."""

    def __init__(self, objective: torch.nn.Module, mode: str, device: torch.device,
                 log: Callable[[str], None]):
        if mode not in COMPILE_MODES:
            raise UserError(f"Compile must be one of {COMPILE_MODES}, got {mode!r}.")
        self.eager, self.log, self.device = objective, log, device
        self.torch_mode = _torch_mode(mode, device)
        self.capacity = 0
        self.compile_seconds = 0.0
        self._compiled_capacities: set[int] = set()
        try:
            self.fn = torch.compile(objective, mode=self.torch_mode, dynamic=False)
        except Exception as err:  # noqa: BLE001 - any failure to compile means: run eager
            self._give_up(err)

    @property
    def active(self) -> bool:
        return self.fn is not None

    def _give_up(self, err: Exception) -> None:
        self.fn = None
        self.log(f"torch.compile unavailable ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                 "training eager.")

    def set_max_masked(self, max_masked: int) -> None:
        self.capacity = capacity_for(max_masked, self.capacity)

    def forward_backward(self, batch: dict, backward: Callable[[torch.Tensor], None], scale: float,
                         full_shape: tuple[int, int], first_micro: bool = True) -> torch.Tensor:
        """The micro-batch's loss (detached), after its backward. first_micro: the first
        micro-batch of an optimizer step."""
        if self.fn is None or tuple(batch["input_ids"].shape) != full_shape or self.capacity == 0:
            loss = self.eager(**batch)
            backward(loss * scale)
            return loss.detach()
        first = self.capacity not in self._compiled_capacities
        began = time.perf_counter()
        if self.torch_mode == "reduce-overhead" and first_micro:
            # A new step: the last step's graph outputs (gradients included) may be overwritten
            # now. Not between micro-batches: the gradients they accumulate must stay intact.
            torch.compiler.cudagraph_mark_step_begin()
        try:
            loss = self.fn(batch["input_ids"], batch["labels"], self.capacity)
            # Cloned: the next replay of a CUDA graph overwrites its outputs.
            detached = loss.detach().clone()
            backward(loss * scale)
        except Exception as err:  # noqa: BLE001
            if not first:
                raise
            self._give_up(err)  # a failed first call leaves no graph and no gradients behind
            return self.forward_backward(batch, backward, scale, full_shape, first_micro)
        if first:
            self._compiled_capacities.add(self.capacity)
            if self.device.type == "cuda":
                torch.cuda.synchronize()  # once per compile: its time should include the device's
            seconds = time.perf_counter() - began
            self.compile_seconds += seconds
            self.log(f"torch.compile ({self.torch_mode}) of the training step for {full_shape[0]} x "
                     f"{full_shape[1]} tokens, {self.capacity} masked rows: {seconds:.1f} s")
        return detached
