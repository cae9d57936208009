"""What a logged training step reports: the window of steps since the last log row.

Loss and gradient norm stay tensors on the device between log steps, so a step does not
wait for the device to report them; they are read once per log row. Throughput counts
the time spent in optimizer steps only, so an evaluation inside the window does not
lower it.
"""

from __future__ import annotations

import resource
import sys
import time

import torch


def peak_memory_bytes(device: torch.device) -> int:
    """Peak memory so far: on a GPU the tensors allocated there (max_memory_allocated);
    on a CPU the process's peak resident set size, which also counts Python and data."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # Linux reports KiB


class LogWindow:
    """Sums over the optimizer steps since the last log row."""

    def __init__(self, device: torch.device):
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.loss = torch.zeros((), device=self.device)
        self.steps = self.samples = self.tokens = 0
        self.seconds = 0.0
        self.grad_norm: torch.Tensor | float = 0.0

    def add(self, step_loss: torch.Tensor, grad_norm, samples: int, tokens: int, seconds: float) -> None:
        self.loss += step_loss.float()
        self.grad_norm = grad_norm  # the latest step's, as Trainer logs it
        self.steps += 1
        self.samples += samples
        self.tokens += tokens
        self.seconds += seconds


def train_row(window: LogWindow, step: int, epoch: float, lr: float, elapsed: float, peak: int) -> dict:
    """The metrics.jsonl train row for `window`, which it then resets."""
    # The device may still be busy with the last step: reading the loss waits for it,
    # and that wait belongs to the window's time.
    waited = time.perf_counter()
    loss = float(window.loss) / max(window.steps, 1)
    seconds = max(window.seconds + time.perf_counter() - waited, 1e-9)
    grad_norm = window.grad_norm
    row = {
        "kind": "train", "step": step, "epoch": epoch,
        "loss": round(loss, 6),
        "lr": float(lr),
        "grad_norm": round(float(grad_norm), 6),
        "samples_per_s": round(window.samples / seconds, 3),
        "tokens_per_s": round(window.tokens / seconds, 1),
        "elapsed_s": elapsed, "peak_memory_bytes": peak,
    }
    window.reset()
    return row
