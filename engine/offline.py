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


# ---------------------------------------------------------------- what the local cache holds
# Offline means "use what is cached": transformers loads a Hub id from HF_HOME's hub cache under
# HF_HUB_OFFLINE=1, so only an id that is not cached is refused. huggingface_hub is imported
# inside the functions: it reads HF_HUB_OFFLINE/HF_HOME at import, after ensure_mode() ran.


def cached_repos(repo_type: str) -> list[str]:
    """Ids of the `repo_type` ("model" | "dataset") repositories with a snapshot in the Hub cache."""
    from huggingface_hub import scan_cache_dir

    try:
        info = scan_cache_dir()
    except Exception:  # noqa: BLE001 - no cache folder (CacheNotFound) or an unreadable one: nothing cached
        return []
    return sorted(r.repo_id for r in info.repos if r.repo_type == repo_type and r.revisions)


def model_cached(repo_id: str) -> bool:
    """Does the Hub cache hold this model's config.json (as a download or preload_from_hub leaves it)?"""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except ValueError:  # HFValidationError: not a valid repo id
        return False


def cached_dataset_snapshot(repo_id: str) -> str | None:
    """The cached snapshot folder of a Hub dataset repository (refs/main), or None when not cached.

    datasets 5.2 offline looks only for an earlier load's prepared Arrow files, never at this
    snapshot, so a dataset that only was downloaded or preloaded is loaded from this folder.
    """
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id, repo_type="dataset", local_files_only=True)
    except Exception:  # noqa: BLE001 - LocalEntryNotFoundError, an invalid id (HFValidationError), ...
        return None
