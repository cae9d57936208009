"""Numbers a user types (widgets, JSON, CLI flags, environment variables), parsed and shown.

One place for what the app accepts as a number and what it says when something is not
one, so every tab, the API and the CLI answer a bad number the same way:

    number("2e-5", "Learning rate")            -> 2e-05
    whole("1,000", "Corpus tokens")            -> 1000     (thousands separators, a leading $)
    whole(1.5, "Batch size")                   -> UserError "Batch size must be a whole number, got 1.5."
    check_chunk_size(64, max_length=512)       -> 64       (the one chunk / sequence length rule)
    format_bytes(3 * 2**20)                    -> "3.0 MB"
"""

from __future__ import annotations

import math
import os

from engine.errors import UserError, quote

KIB, MIB, GIB = 2**10, 2**20, 2**30
MIN_CHUNK = 8  # tokens: below this a chunk holds little more than its special tokens


def _parse(value) -> float:
    """float(value), also from text with thousands separators or a leading '$'; ValueError if not."""
    if isinstance(value, str):
        value = value.strip().replace(",", "").replace("_", "").removeprefix("$")
    if value is None:
        raise ValueError
    return float(value)  # TypeError for anything else that is not a number


def number(value, label: str, *, whole: bool = False, what: str = "") -> float | int:
    """`value` as a finite float (or an int with whole=True), else a UserError naming `label`.

    `what` describes the accepted range in the messages (" between 0 and 1"); the caller
    checks the range itself, with its own words.
    """
    kind = ("whole number" if whole else "number") + what
    if value is None or (isinstance(value, str) and not value.strip()):
        raise UserError(f"{label} must be a {kind}; the field is empty.")
    try:
        parsed = _parse(value)
    except (TypeError, ValueError):
        raise UserError(f"{label} must be a {kind}, got {quote(value)}.") from None
    if not math.isfinite(parsed):
        raise UserError(f"{label} must be a finite {kind}, got {quote(value)}.")
    if whole:
        if not parsed.is_integer():
            raise UserError(f"{label} must be a {kind}, got {quote(value)}.")
        return int(parsed)
    return parsed


def whole(value, label: str, *, minimum: int | None = None, what: str = "") -> int:
    """A whole number, at least `minimum` when given ("Seed must be a whole number of 0 or more")."""
    n = number(value, label, whole=True, what=what)
    if minimum is not None and n < minimum:
        raise UserError(f"{label} must be a whole number of {minimum} or more, got {quote(value)}.")
    return n


def optional_whole(value, label: str, default: int = 0) -> int:
    """An optional widget (an empty box means `default`, e.g. 0 = all documents)."""
    return default if value is None or (isinstance(value, str) and not value.strip()) else whole(value, label)


def env_number(name: str, default, *, minimum: float | None = None, env=None):
    """An environment variable as a number of `default`'s type; `default` when unset or bad.

    A typo in a server setting must not take the app down, so this never raises."""
    raw = (os.environ if env is None else env).get(name, "")
    try:
        value = number(raw, name, whole=isinstance(default, int))
    except UserError:
        return default
    return max(value, minimum) if minimum is not None else value


def check_chunk_size(value, max_length: int | None = None, label: str = "Chunk size",
                     model: str = "the model") -> int:
    """The one rule for a chunk (or sequence) length: a whole number of tokens, at least
    MIN_CHUNK, and no more than the model takes (when `max_length` is known)."""
    size = number(value, label, whole=True)
    if size < MIN_CHUNK:
        raise UserError(f"{label} must be at least {MIN_CHUNK} tokens, got {size}.")
    if max_length is not None and size > max_length:
        raise UserError(f"{label} {size} is above {model}'s maximum of {max_length} tokens.")
    return size


def format_bytes(n: float) -> str:
    """A size for people: '512 bytes', '1.5 KB', '12.3 MB', '1,234.5 GB' (powers of 1024, named as
    file managers name them; the Costs tab's fixed-unit figures say GiB and MiB, see gib/mib)."""
    unit, size = next(((u, s) for u, s in (("GB", GIB), ("MB", MIB), ("KB", KIB)) if abs(n) >= s), ("", 1))
    return f"{n / size:,.1f} {unit}" if unit else f"{n:,.0f} bytes"


def gib(n: float, digits: int = 2) -> str:
    return f"{n / GIB:.{digits}f} GiB"


def mib(n: float, digits: int = 1) -> str:
    return f"{n / MIB:.{digits}f} MiB"
