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


def browser_secret(root: Path) -> str:
    """A per-installation key for gr.BrowserState, kept next to the runs so that the owner
    token a browser stored survives a server restart exactly as long as the runs do."""
    path = Path(root) / ".browser_secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        secret = secrets.token_hex(16)
        tmp = path.with_name(f".browser_secret.{os.getpid()}.tmp")
        tmp.write_text(secret)
        try:
            os.link(tmp, path)  # atomic create-if-absent: two processes agree on one secret
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        return path.read_text().strip()
