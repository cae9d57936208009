"""Keep freed tensor memory in the training process instead of handing it back each step.

Why this exists: PyTorch has no caching allocator on CPU, so every tensor comes from
glibc's malloc. glibc serves big blocks (the 47 MB embedding gradient, the masked
logits, each layer's activations) with a fresh mmap and unmaps them when freed, so
every training step takes a page fault for every 4 KiB page of every big tensor, and
the kernel zeroes each page. Measured here: `torch.zeros(30522, 384)` takes 11 ms
through fresh pages and 2 ms through reused ones, and a MiniLM training step (batch
16 x 128, 2 threads) 1.30 s against 1.00 s. bench/train_throughput.py prints both.

PyTorch's CPU performance guide answers this with jemalloc or tcmalloc through
LD_PRELOAD, which must be set before the process starts and needs a package this
project cannot count on. glibc's own switches (mallopt) do the same job from inside the
process: no mmap for big blocks, and no trimming of the heap's free top, so the pages of
one step are reused by the next. The cost: memory freed during training stays with the
process until it ends, and a heap fragments more than fresh mappings do (peak resident
memory of the MiniLM benchmark: 1,936 MiB against 1,884 MiB). That suits the training
worker, which exits when its run ends, and the CLI; the web server never calls this.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

from engine.offline import env_flag

# From glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_KEEP_UP_TO = 2**31 - 1  # the largest trim threshold mallopt takes (a C int): 2 GiB

_installed = False


def wanted() -> bool:
    """On unless MLM_DEFAULT_MALLOC=1 asks for glibc's defaults (to compare, or to rule this out)."""
    return not env_flag("MLM_DEFAULT_MALLOC")


def _glibc():
    """glibc's C library, or None on other C libraries (musl, macOS, Windows) where mallopt differs."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def install() -> bool:
    """Switch this process's malloc to reuse big blocks; True when it took effect (or already had).

    Process-wide and for the rest of the process's life: glibc has no way back to its
    adaptive defaults once a threshold is set by hand, so only processes that exist to
    train should call it.
    """
    global _installed
    if _installed:
        return True
    libc = _glibc()
    if libc is None:
        return False
    # mallopt returns 1 on success, 0 on error.
    ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_UP_TO) == 1
    _installed = ok
    return ok
