"""Every input checked by its declared type, once, before anything is queued or computed.

Config dataclasses (TrainConfig, CorpusConfig) declare each field's type; `check(value, kind,
label)` holds it to that type: booleans are real booleans (JSON `"no"` is not false), whole
numbers are finite and bounded, seeds fit what NumPy and PyTorch accept, text is bounded in
length, lists hold text and objects are objects. Messages quote a user's value only when it
is short (`quote`), so a 100 KB id is never echoed back whole.
"""

from __future__ import annotations

import json

from engine.errors import UserError, quote  # noqa: F401 (quote: re-exported)
from engine.numbers import number

MAX_TEXT = 1_000  # characters: a model id, a path, a column name (PATH_MAX is 4096, a name 255)
MAX_WHOLE = 10**12  # any count or size a run could use; far past that is a typo or an attack
MAX_REAL = 1e12
SEED_MAX = 2**32 - 1  # numpy.random.seed and torch.manual_seed both take 0..2**32-1
MAX_LIST = 100
MAX_JSON_CHARS = 100_000  # a config or argument object; real ones are a few hundred characters
MAX_JSON_DEPTH = 8  # TrainConfig nests one object (the corpus)


def type_name(annotation) -> str:
    """A dataclass field's declared type as text ('int', 'list[str]', 'CorpusConfig')."""
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))


def check(value, kind: str, label: str, *, maximum: float | None = None):
    """`value` held to its declared `kind` (int, float, bool, str, list[str]); UserError naming `label`."""
    if kind == "bool":
        if not isinstance(value, bool):
            raise UserError(f"{label} must be true or false, got {quote(value)}.")
        return value
    if kind in ("int", "float"):
        if isinstance(value, bool):  # bool is an int subclass; a checkbox value is no count
            raise UserError(f"{label} must be a number, got {quote(value)}.")
        if isinstance(value, str) and len(value) > 64:
            raise UserError(f"{label} must be a number, got {quote(value)}.")
        parsed = number(value, label, whole=kind == "int")
        bound = maximum if maximum is not None else (MAX_WHOLE if kind == "int" else MAX_REAL)
        if abs(parsed) > bound:
            raise UserError(f"{label} must be at most {quote(bound)}, got {quote(value)}.")
        return parsed
    if kind == "str":
        if not isinstance(value, str):
            raise UserError(f"{label} must be text, got {quote(value)}.")
        if len(value) > (maximum or MAX_TEXT):
            raise UserError(f"{label} is too long: {len(value):,} characters (at most {int(maximum or MAX_TEXT):,}).")
        return value
    if kind == "list[str]":
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise UserError(f"{label} must be a list of names like [\"query\", \"value\"], got {quote(value)}.")
        if len(value) > MAX_LIST:
            raise UserError(f"{label} has {len(value):,} entries (at most {MAX_LIST}).")
        return [check(v, "str", label, maximum=200) for v in value]
    return value  # a nested dataclass: its own validated() checks it


def json_depth_ok(text: str, depth: int = MAX_JSON_DEPTH) -> bool:
    """Cheap pre-check before json.loads: deep nesting makes the parser recurse (RecursionError)."""
    level = worst = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            level += 1
            worst = max(worst, level)
            if worst > depth:
                return False
        elif ch in "]}":
            level -= 1
    return True


def json_object(text, label: str) -> dict:
    """`text` parsed as one JSON object of bounded size and depth, else a UserError naming `label`."""
    if not isinstance(text, str):
        raise UserError(f"{label} must be a JSON object as text, got {quote(text)}.")
    if len(text) > MAX_JSON_CHARS:
        raise UserError(f"{label} is too long: {len(text):,} characters (at most {MAX_JSON_CHARS:,}).")
    if not json_depth_ok(text):
        raise UserError(f"{label} nests objects more than {MAX_JSON_DEPTH} levels deep.")
    try:
        raw = json.loads(text or "{}")
    except ValueError as exc:
        raise UserError(f"{label} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{label} must be a JSON object of settings, like {{\"max_steps\": 50}}.")
    return raw
