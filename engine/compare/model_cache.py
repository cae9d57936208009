"""Loaded models kept in memory for the Compare tab, with LoRA adapters sharing one base.

A *view* is what a column of the Compare tab shows: a plain model (the base, or a fully
fine-tuned run) or a LoRA adapter. Views live on *slots*, one per base model in memory.
All adapters trained from the same base are loaded into ONE PeftModel around that base
(peft's load_adapter / set_adapter), and the base's own view runs inside
`disable_adapter()`; no adapter costs a copy of the base weights.

The cache holds at most `MLM_MODEL_CACHE` views (default 4) and evicts the least
recently used one: an adapter is deleted from its PeftModel (the last one unloads the
LoRA layers), and a slot no view uses any more is dropped.

A base model's weights are read before the cache lock is taken, so one user's download of
a Hub model does not hold up everyone else's comparisons of models already in memory.
"""

from __future__ import annotations

import re
import threading
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from engine.architectures import head_trained
from engine.errors import UserError
from engine.models import (
    ModelInfo,
    _adapter_base,
    _load_base,
    adapter_modules_to_save,
    describe,
    load_tokenizer,
    model_bytes,
    resolve,
)
from engine.numbers import env_number, format_bytes

DEFAULT_CAP = 4


def cache_cap() -> int:
    return env_number("MLM_MODEL_CACHE", DEFAULT_CAP, minimum=1)


@dataclass
class _Slot:
    """One base model in memory, and the PeftModel around it once an adapter is loaded."""

    src: str
    model: object
    missing: frozenset[str]  # weights the folder lacked (drawn at random): the MLM head's, for MiniLM
    bytes: int
    peft: object | None = None
    adapters: set[str] = field(default_factory=set)
    users: int = 0


@dataclass
class View:
    key: str
    label: str
    kind: str  # "full" (a plain model) | "lora" (an adapter on a shared base)
    src: str  # the folder or Hub id the view was loaded from
    slot: _Slot
    tokenizer: object
    info: ModelInfo
    memory_bytes: int  # a plain model: its weights; an adapter: its own weights only
    adapter: str | None = None


class ModelCache:
    def __init__(self, cap: int | None = None):
        self.cap = cap or cache_cap()
        self._views: OrderedDict[str, View] = OrderedDict()
        self._slots: dict[str, _Slot] = {}
        self._loaded = 0  # numbers adapter names, so a reloaded adapter never meets an old name
        # One lock for the views and for running: a PeftModel has one active adapter at a
        # time, and Gradio runs handlers in parallel threads.
        self.lock = threading.RLock()
        # Reading a base model's weights (from disk or the Hub, seconds to minutes) happens
        # before taking `lock`, so other users' comparisons of models already in memory go
        # on meanwhile. One read at a time: each seeds the RNG for the weights a folder lacks.
        self._reading = threading.Lock()
        self._read: dict[str, tuple | Exception] = {}  # base src -> _load_base's result, for _slot
        self._read_guard = threading.Lock()  # held only to look at or change _read

    # ------------------------------------------------------------- loading

    def get(self, ref: str, label: str | None = None, keep: tuple[str, ...] = ()) -> View:
        """The view for `ref` (a model ref or a run's final/ folder), loading it when needed."""
        self._read_ahead(resolve(ref))
        return self._get(ref, label, keep)

    def _get(self, ref: str, label: str | None, keep: tuple[str, ...]) -> View:
        with self.lock:
            src = resolve(ref)
            key = f"view:{src}"
            view = self._views.get(key)
            if view is None:
                view = self._load(src, ref, label or ref, key)
                self._views[key] = view
            self._views.move_to_end(key)
            if label:
                view.label = label
            self._evict(keep=set(keep) | {key})
            return view

    def get_many(self, refs: list[tuple[str, str]]) -> list[View]:
        """Load several views for one request; none of them is evicted to make room for another.

        When a request needs more views than the cap, the cache holds them all until the next
        request (evicting one in the middle would reload it in a loop).
        """
        for ref, _ in refs:
            self._read_ahead(resolve(ref))
        with self.lock:
            keys = tuple(f"view:{resolve(ref)}" for ref, _ in refs)
            return [self._get(ref, label, keys) for ref, label in refs]  # read ahead above, not under the lock

    def run_each(self, specs, fn) -> list:
        """[fn(model, tokenizer)] for each spec (anything with .ref and .label), in order.

        All the models are loaded for this one request (none evicted for another), and each
        runs with its own adapter active, under the cache lock.
        """
        with self.lock:
            views = self.get_many([(s.ref, s.label) for s in specs])
            results = []
            for view in views:
                with self.activate(view) as model:
                    results.append(fn(model, view.tokenizer))
            return results

    def _load(self, src: str, ref: str, label: str, key: str) -> View:
        try:
            base_src = _adapter_base(src)
        except UserError as exc:
            raise UserError(f"The LoRA adapter in {src!r} names a base model that cannot be loaded: {exc}") from exc
        self._loaded += 1
        if base_src is None:
            slot = self._slot(src)
            tok = self._tokenizer(src)
            info = describe(slot.model, tok, ref, head_trained(slot.missing))
            slot.users += 1
            return View(key, label, "full", src, slot, tok, info, slot.bytes)
        slot = self._slot(base_src)
        name = "run_" + re.sub(r"\W", "_", Path(src).parent.name or "adapter") + f"_{self._loaded}"
        self._attach_adapter(slot, src, name)
        tok = self._tokenizer(src)
        # The one rule (engine.architectures): the base's own head, or one this adapter trained.
        info = describe(slot.peft, tok, ref, head_trained(slot.missing, adapter_modules_to_save(slot.peft, name)))
        own = _adapter_bytes(slot.peft, name)
        # describe() counted the LoRA weights of every adapter on this base; count this one's only.
        info.parameters = sum(p.numel() for n, p in slot.model.named_parameters() if "lora_" not in n)
        info.parameters += sum(t.numel() for t in _adapter_state(slot.peft, name).values())
        slot.users += 1
        return View(key, label, "lora", src, slot, tok, info, own, name)

    def _read_ahead(self, src: str) -> None:
        """Read the weights of the base model `src` needs, if not in memory, without `lock`."""
        try:
            base = _adapter_base(src) or src
        except UserError:
            return  # _load says so, with the adapter's name, under the lock
        if f"view:{src}" in self._views:  # in memory already: the usual case, no waiting on a read
            return
        with self._reading:
            with self._read_guard:
                wanted = [k for k in (base, f"tokenizer:{src}") if k not in self._read]
            if base in self._slots and base in wanted:
                wanted.remove(base)
            for key in wanted:
                try:
                    result = _load_base(key) if key == base else load_tokenizer(src)
                except (OSError, ValueError, UserError) as exc:
                    result = exc
                with self._read_guard:
                    self._read[key] = result

    def _tokenizer(self, src: str):
        with self._read_guard:
            read = self._read.pop(f"tokenizer:{src}", None)
        if isinstance(read, Exception):
            raise read
        return read if read is not None else load_tokenizer(src)

    def _slot(self, src: str) -> _Slot:
        slot = self._slots.get(src)
        if slot is None:
            with self._read_guard:
                read = self._read.pop(src, None)
            try:
                if isinstance(read, Exception):
                    raise read
                model, missing = read if read is not None else _load_base(src)
            except (OSError, ValueError) as exc:
                raise UserError(f"Could not load {src!r} as a masked language model: {exc}") from exc
            model.eval()
            slot = self._slots[src] = _Slot(src, model, frozenset(missing), model_bytes(model))
        return slot

    def _attach_adapter(self, slot: _Slot, adapter_dir: str, name: str) -> None:
        from peft import PeftModel

        try:
            with warnings.catch_warnings():
                # peft looks for the base's config.json under the adapter's base name ("bundled")
                # to check the vocabulary; the base is already loaded here, so the warning is noise.
                warnings.filterwarnings("ignore", message="Could not find a config file")
                if slot.peft is None:
                    slot.peft = PeftModel.from_pretrained(slot.model, adapter_dir, adapter_name=name)
                else:
                    slot.peft.load_adapter(adapter_dir, adapter_name=name)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise UserError(f"Could not apply the LoRA adapter in {adapter_dir!r}: {exc}") from exc
        slot.peft.eval()
        slot.adapters.add(name)

    # ------------------------------------------------------------- eviction

    def _evict(self, keep: set[str]) -> None:
        while len(self._views) > self.cap:
            victim = next((k for k in self._views if k not in keep), None)
            if victim is None:
                return
            self.drop(victim)

    def drop(self, key: str) -> None:
        with self.lock:
            view = self._views.pop(key, None)
            if view is None:
                return
            slot = view.slot
            if view.adapter is not None:
                slot.adapters.discard(view.adapter)
                if slot.adapters:
                    slot.peft.delete_adapter(view.adapter)
                else:  # the last adapter: take the LoRA layers out, the base weights stay as they are
                    slot.model = slot.peft.unload()
                    slot.peft = None
            slot.users -= 1
            if slot.users <= 0:
                self._slots.pop(slot.src, None)

    # ------------------------------------------------------------- running

    @contextmanager
    def activate(self, view: View):
        """The module to run for `view`: its adapter set active, or all adapters off for a plain view."""
        with self.lock:
            slot = view.slot
            if slot.peft is None:
                yield slot.model
            elif view.adapter is None:
                with slot.peft.disable_adapter():
                    yield slot.peft
            else:
                slot.peft.set_adapter(view.adapter)
                yield slot.peft

    # ------------------------------------------------------------- reporting

    def keys(self) -> list[str]:
        return list(self._views)

    def memory_rows(self) -> list[dict]:
        """One row per view, plus a row for a base held only for its adapters."""
        with self.lock:
            rows = [
                _memory_row(v.label, "LoRA adapter" if v.kind == "lora" else "full model", v.memory_bytes,
                            f"shares the base weights of {Path(v.slot.src).name}" if v.kind == "lora" else "")
                for v in self._views.values()
            ]
            plain = {v.slot.src for v in self._views.values() if v.kind == "full"}
            rows += [_memory_row(Path(src).name, "shared base", slot.bytes, "held for its LoRA adapters")
                     for src, slot in self._slots.items() if src not in plain]
            return rows


human_bytes = format_bytes  # the Compare tab's name for it


def _memory_row(model: str, kind: str, n: int, note: str) -> dict:
    return {"model": model, "kind": kind, "memory": human_bytes(n), "bytes": int(n), "note": note}


def _adapter_state(peft_model, name: str) -> dict:
    from peft.utils import get_peft_model_state_dict

    return get_peft_model_state_dict(peft_model, adapter_name=name)


def _adapter_bytes(peft_model, name: str) -> int:
    return sum(t.numel() * t.element_size() for t in _adapter_state(peft_model, name).values())


_CACHE: ModelCache | None = None


def shared_cache() -> ModelCache:
    """The process-wide cache the Compare tab uses."""
    global _CACHE
    if _CACHE is None:
        _CACHE = ModelCache()
    return _CACHE
