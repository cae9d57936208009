"""Who may cancel or resume a run: owner tokens (stored hashed) and the admin token."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from engine.run_folder import RunFolder, read_json, write_json_atomic


def owner_hash(token: str) -> str:
    """Only a hash of the browser's owner token is stored, so the runs folder leaks no tokens."""
    return hashlib.sha256(("mlm-studio-owner:" + token).encode()).hexdigest()


def write_owner(folder: RunFolder, token: str) -> None:
    write_json_atomic(folder.owner_path, {"owner": owner_hash(token)})


def is_owner(folder: RunFolder, token: str | None) -> bool:
    if not token:
        return False
    stored = read_json(folder.owner_path).get("owner", "")
    return bool(stored) and hmac.compare_digest(stored, owner_hash(token))


def is_admin(token: str | None) -> bool:
    admin = os.environ.get("MLM_ADMIN_TOKEN", "")
    return bool(admin) and bool(token) and hmac.compare_digest(admin.encode(), str(token).encode())


def owner_of(folder: RunFolder) -> str:
    """The stored owner hash of a run ('' without one)."""
    return str(read_json(folder.owner_path).get("owner", ""))


def new_owner_token() -> str:
    """A fresh owner token for an API start: returned to the caller, only its hash is stored."""
    return secrets.token_urlsafe(24)


def browser_secret(root: Path) -> str:
    """A per-installation key for gr.BrowserState's encryption, kept next to the runs so that
    what a browser stored survives a server restart exactly as long as the runs do.

    Gradio sends this key to every visitor (/config): it must never make an owner token."""
    return _installation_key(Path(root) / ".browser_secret")


def owner_key(root: Path) -> str:
    """The server-only key from which a page session's owner token is derived (an HMAC):
    unlike browser_secret it never leaves the server."""
    return _installation_key(Path(root) / ".owner_key")


_memory_keys: dict[Path, str] = {}


def _installation_key(path: Path) -> str:
    """A random key stored at `path` once (two processes agree on one); on a full or read-only
    runs folder, a key for this process's lifetime, so the app still starts."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    except OSError:
        return _memory_keys.setdefault(path, secrets.token_hex(16))
    secret = secrets.token_hex(16)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(secret)
        os.link(tmp, path)  # atomic create-if-absent: two processes agree on one secret
    except FileExistsError:
        pass
    except OSError:
        return _memory_keys.setdefault(path, secret)
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
    return path.read_text().strip()
