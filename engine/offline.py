"""Decide once whether the Hugging Face Hub is reachable.

transformers and datasets read HF_HUB_OFFLINE at import time, so `ensure_mode()` must
run before either is imported (app.py and engine/__main__.py call it first).
"""

import os
import socket

_TRUTHY = {"1", "true", "yes", "on"}


def hub_reachable(host: str = "huggingface.co", timeout: float = 1.5) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def env_flag(name: str) -> bool:
    """True when the environment variable `name` is set to 1, true, yes or on."""
    return os.environ.get(name, "").strip().lower() in _TRUTHY


def is_offline() -> bool:
    return env_flag("HF_HUB_OFFLINE")


def ensure_mode() -> bool:
    """Set HF_HUB_OFFLINE=1 when the Hub cannot be reached; return True when offline."""
    if is_offline():
        return True
    if not hub_reachable():
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
        return True
    return False
