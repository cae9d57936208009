"""Before/after: the base model and finished runs side by side on the same input.

Runs are read straight from their folders (engine.run_folder.RunFolder): a run can be
compared when its status says completed and its final model or adapter is on disk.
Models come from engine.compare.model_cache, where LoRA adapters share one base in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from engine.compare.model_cache import ModelCache, View, shared_cache
from engine.compare.predictions import (
    FillMaskResult,
    check_top_k,
    fill_mask_many,
    mask_probabilities,
    normalize,
    top_predictions,
)
from engine.errors import UserError, quote
from engine.models import cached_tokenizer, default_model_ref, resolve
from engine.numbers import whole
from engine.run_folder import RunFolder, valid_run_id

MAX_MODELS = 4
BASE = "base"  # the name of the base model's column in choices, links and the API
N_MOVES = 3  # biggest increases and biggest decreases shown per mask
MIN_MOVE = 1e-4  # a smaller change in probability is noise, not a move


# ---------------------------------------------------------------- runs on disk


@dataclass
class RunEntry:
    run_id: str
    state: str
    folder: RunFolder
    config: dict
    summary: dict
    message: str = ""

    @property
    def final_dir(self) -> Path:
        return self.folder.final_dir

    @property
    def method(self) -> str:
        return str(self.config.get("method", "?"))

    @property
    def label(self) -> str:
        """The run's name (its id when it has none) and what it is; escaped where it is shown as HTML."""
        ppl = self.summary.get("eval_perplexity_after")
        ppl_txt = f", perplexity {ppl:.1f}" if isinstance(ppl, (int, float)) else ""
        name = self.config.get("name") or self.run_id
        model = Path(str(self.config.get("model", "?"))).name
        return f"{name} ({self.method} on {model}{ppl_txt}) · {self.run_id[-6:]}"


def _entry(folder: RunFolder) -> RunEntry:
    status = folder.status()
    return RunEntry(folder.run_id, str(status.get("state", "unknown")), folder, folder.config(),
                    folder.summary(), str(status.get("message", "") or ""))


def list_runs() -> list[RunEntry]:
    """Runs that can be compared: completed, with final/ on disk; newest first."""
    entries = [_entry(f) for f in reversed(RunFolder.all())]
    return [e for e in entries if e.state == "completed" and e.folder.has_final()]


def run_choices() -> list[tuple[str, str]]:
    """(label, value) pairs for the model picker: the base first, then finished runs."""
    return [("base model", BASE)] + [(e.label, e.run_id) for e in list_runs()]


def comparable_run(run_id: str) -> RunEntry:
    """The run named `run_id`, or a UserError saying why it cannot be compared."""
    if not valid_run_id(run_id):
        raise UserError(f"{run_id!r} is not a run id (ids look like 20260101-120000-0123456789abcdef).")
    folder = RunFolder.find(run_id)
    if folder is None:
        raise UserError(f"Run {run_id} is not on this server (its folder was deleted, or the id is wrong).")
    entry = _entry(folder)
    if entry.state in ("queued", "running"):
        step = folder.status().get("step")
        where = f" (step {step})" if step is not None else ""
        raise UserError(f"Run {run_id} is still {entry.state}{where}: compare it once it has completed.")
    if entry.state != "completed":
        why = f": {entry.message}" if entry.message else ""
        raise UserError(f"Run {run_id} {entry.state}{why}. Only completed runs can be compared.")
    if not folder.has_final():
        raise UserError(f"Run {run_id} has no final model on disk (final/ was deleted): train it again.")
    return entry


# ---------------------------------------------------------------- which models


@dataclass
class Spec:
    name: str  # BASE or a run id
    label: str
    ref: str  # what ModelCache.get loads
    run: RunEntry | None = None


def model_specs(names: list[str] | None, base_ref: str | None = None) -> list[Spec]:
    if isinstance(names, str):  # one name from a script, not a list: not its characters one by one
        names = [names]
    if names is not None and not isinstance(names, list | tuple):
        raise UserError(f"Models must be a list of names (the base and finished run ids), got {quote(names)}.")
    names = [n.strip() for n in (names or []) if isinstance(n, str) and n.strip()]
    names = list(dict.fromkeys(names))  # drop repeats, keep order
    if not names:
        raise UserError("No model selected: pick the base model and/or up to four finished runs.")
    if len(names) > MAX_MODELS:
        raise UserError(f"{len(names)} models picked; at most {MAX_MODELS} fit side by side. Remove some.")
    specs = []
    for name in names:
        if name == BASE:
            specs.append(base_spec(base_ref))
        else:
            run = comparable_run(name)
            specs.append(Spec(name, column_label(run), str(run.final_dir), run))
    return specs


def column_label(run: RunEntry) -> str:
    """A run's column header and legend entry: its name, with the id's end so equal names stay apart."""
    name = run.config.get("name")
    if not name or name == run.run_id:
        return f"{run.run_id} ({run.method})"
    return f"{name} ({run.method}, …{run.run_id[-6:]})"


def base_spec(base_ref: str | None) -> Spec:
    ref = (base_ref or "").strip() or default_model_ref()
    return Spec(BASE, f"base: {ref}", ref)


def _same_ref(a: str, b: str) -> bool:
    try:
        return resolve(a) == resolve(b)
    except UserError:
        return a == b


def vocab_fingerprint(tokenizer) -> str:
    """A hash of the vocabulary, kept on the tokenizer: get_vocab() builds a 30k-entry dict (~30 ms)."""
    fp = getattr(tokenizer, "_mlm_vocab_fingerprint", None)
    if fp is None:
        import hashlib

        items = sorted(tokenizer.get_vocab().items())
        fp = hashlib.sha1(repr((items, tokenizer.mask_token_id)).encode()).hexdigest()
        tokenizer._mlm_vocab_fingerprint = fp
    return fp


def _same_vocab(a, b) -> bool:
    """Probabilities of two models are comparable token by token only over one vocabulary."""
    return a is b or (len(a) == len(b) and vocab_fingerprint(a) == vocab_fingerprint(b))


# ---------------------------------------------------------------- side by side


@dataclass
class Move:
    mask: int  # 1-based
    token: str
    p_base: float
    p_model: float

    @property
    def change(self) -> float:
        return self.p_model - self.p_base


@dataclass
class Column:
    name: str
    label: str
    kind: str
    result: FillMaskResult
    memory_bytes: int
    head_trained: bool
    note: str
    moves: list[Move] = field(default_factory=list)


@dataclass
class CompareResult:
    text: str
    columns: list[Column]
    notices: list[str] = field(default_factory=list)

    def moves_frame(self) -> pd.DataFrame:
        rows = [
            {"model": c.label, "mask": m.mask, "token": m.token, "p_base": round(m.p_base, 4),
             "p_model": round(m.p_model, 4), "change": round(m.change, 4)}
            for c in self.columns for m in c.moves
        ]
        return pd.DataFrame(rows, columns=["model", "mask", "token", "p_base", "p_model", "change"])


def _scores(cache: ModelCache, view: View, text: str):
    with cache.activate(view) as model:
        return mask_probabilities(model, view.tokenizer, text)


def compare(names: list[str] | None, text: str, top_k: int = 5, base_ref: str | None = None,
            cache: ModelCache | None = None) -> CompareResult:
    """Top-k per mask for every chosen model, and what moved most against the base."""
    top_k = check_top_k(top_k)
    specs = model_specs(names, base_ref)
    normalize(text, "[MASK]")  # a bad text fails before any model loads
    cache = cache or shared_cache()
    reference = base_spec(base_ref)
    wanted = specs if any(s.name == BASE for s in specs) else [reference, *specs]
    with cache.lock:
        views = dict(zip([s.name for s in wanted], cache.get_many([(s.ref, s.label) for s in wanted])))
        scored = {name: _scores(cache, view, text) for name, view in views.items()}
    base_view, base_scores = views[BASE], scored[BASE]
    result = CompareResult(base_scores.text, [], list(base_scores.notices))
    for spec in specs:
        view = views[spec.name]
        col = Column(spec.name, spec.label, view.kind, top_predictions(view.tokenizer, scored[spec.name], top_k),
                     view.memory_bytes, view.info.head_trained, view.info.note)
        if spec.name != BASE:
            if _same_vocab(view.tokenizer, base_view.tokenizer):
                col.moves = biggest_moves(scored[spec.name].probs, base_scores.probs, view.tokenizer, top_k)
            else:
                result.notices.append(f"{spec.label} uses another vocabulary than the base: no moves computed.")
            trained_from = str(spec.run.config.get("model", "")) if spec.run else ""
            if trained_from and not _same_ref(trained_from, reference.ref):
                result.notices.append(f"{spec.run.run_id} was trained from {trained_from!r}, not the base shown.")
        result.columns.append(col)
    return result


def biggest_moves(model_probs: torch.Tensor, base_probs: torch.Tensor, tokenizer, top_k: int) -> list[Move]:
    """Per mask: over the union of both models' top-k tokens, the largest rises and falls."""
    moves: list[Move] = []
    for m in range(min(len(model_probs), len(base_probs))):
        ids = torch.cat([model_probs[m].topk(top_k).indices, base_probs[m].topk(top_k).indices]).unique()
        change = model_probs[m, ids] - base_probs[m, ids]
        order = change.argsort(descending=True).tolist()
        ups = [i for i in order[:N_MOVES] if change[i] >= MIN_MOVE]
        downs = [i for i in reversed(order[-N_MOVES:]) if change[i] <= -MIN_MOVE and i not in ups]
        for i in ups + downs:
            tid = int(ids[i])
            moves.append(Move(m + 1, tokenizer.decode([tid]).strip(), float(base_probs[m, tid]),
                              float(model_probs[m, tid])))
    return moves


# ---------------------------------------------------------------- prompt list

MAX_PROMPTS = 50


def parse_prompts(prompts: str | list[str] | None) -> tuple[list[str], list[str]]:
    """One prompt per line (or a list); blank lines skipped. Returns (usable prompts, a message per
    line that cannot be used): one line without a mask must not cost the rest of the list."""
    lines = prompts.splitlines() if isinstance(prompts, str) else list(prompts or [])
    lines = [line.strip() for line in lines if line and line.strip()]
    if not lines:
        raise UserError("The prompt list is empty: type one prompt with a [MASK] per line.")
    if len(lines) > MAX_PROMPTS:
        raise UserError(f"{len(lines)} prompts; at most {MAX_PROMPTS} at once. Split the list.")
    good, skipped = [], []
    for i, line in enumerate(lines, 1):
        try:
            normalize(line, "[MASK]")
            good.append(line)
        except UserError as exc:
            skipped.append(f"Prompt {i} ({line[:60]!r}) skipped: {exc}")
    if not good:
        raise UserError("No prompt in the list can be used. " + " ".join(skipped))
    return good, skipped


def prompt_table(names: list[str] | None, prompts, base_ref: str | None = None,
                 cache: ModelCache | None = None) -> pd.DataFrame:
    """Long format: one row per prompt x mask x model with the top-1 token and its probability.
    Lines that cannot be used are listed in the frame's attrs["skipped"]."""
    lines, skipped = parse_prompts(prompts)
    specs = model_specs(names, base_ref)
    cache = cache or shared_cache()
    rows = []
    per_model = cache.run_each(specs, lambda model, tok: fill_mask_many(model, tok, lines, top_k=1))
    for spec, results in zip(specs, per_model):
        for prompt, res in zip(lines, results):
            for m, preds in enumerate(res.masks):
                rows.append({"prompt": prompt, "mask": m + 1, "model": spec.label,
                             "top1": preds[0].token, "probability": round(preds[0].probability, 4)})
    frame = pd.DataFrame(rows, columns=["prompt", "mask", "model", "top1", "probability"])
    frame.attrs["skipped"] = skipped
    return frame


def wide_prompt_table(long: pd.DataFrame) -> pd.DataFrame:
    """Prompts down, models across, 'token (p)' in each cell: the table the tab shows."""
    if long.empty:
        return pd.DataFrame(columns=["prompt", "mask"])
    cells = long.assign(cell=long["top1"] + " (" + long["probability"].map("{:.2f}".format) + ")")
    wide = cells.pivot_table(index=["prompt", "mask"], columns="model", values="cell", aggfunc="first", sort=False)
    return wide.reset_index().rename_axis(columns=None)


# ---------------------------------------------------------------- perplexity


def _evaluate(model, arrays: dict, batch_size: int) -> tuple[float, float]:
    try:
        from engine.training.loop import evaluate
    except ImportError:  # the training engine keeps it next to the eval set
        from engine.training.eval_set import evaluate
    try:
        return evaluate(model, arrays, batch_size)
    finally:
        model.eval()  # the cached model must stay in eval mode whatever evaluate() left behind


def perplexity_table(names: list[str] | None, base_ref: str | None = None, eval_run: str | None = None,
                     max_rows: int = 256, batch_size: int = 32, cache: ModelCache | None = None,
                     corpus_id: str | None = None) -> pd.DataFrame:
    """Every chosen model's perplexity on ONE fixed masked eval set: `corpus_id`'s test split masked once
    (see corpus_eval_set), else `eval_run`'s eval set, else the first run's."""

    specs = model_specs(names, base_ref)
    rows = max(1, whole(max_rows, "Rows of the eval set"))
    if corpus_id:
        source = None
        arrays = corpus_eval_set(corpus_id, specs[0].ref, rows)
        eval_tok = cached_tokenizer(specs[0].ref)  # the first model's tokenizer masked it
    else:
        source = _eval_run(specs, eval_run)
        with np.load(source.folder.eval_set_path) as npz:
            arrays = {k: npz[k][:rows] for k in ("input_ids", "attention_mask", "labels")}
        eval_tok = cached_tokenizer(str(source.final_dir))  # the tokenizer that made the eval set
    cache = cache or shared_cache()
    rows = []
    # A model with another vocabulary cannot be scored on these token ids: left blank.
    scores = cache.run_each(
        specs, lambda model, tok: _evaluate(model, arrays, batch_size) if _same_vocab(tok, eval_tok) else None)
    for spec, score in zip(specs, scores):
        recorded = spec.run.summary if spec.run else {}
        row = {"model": spec.label, "perplexity": None, "loss": None,
               "recorded_before": (recorded or (source.summary if source else {})).get("eval_perplexity_before"),
               "recorded_after": recorded.get("eval_perplexity_after"), "eval_chunks": len(arrays["labels"])}
        if score is not None:
            loss, ppl = score
            row.update(perplexity=round(ppl, 3), loss=round(loss, 4))
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs["eval_run"] = source.run_id if source else ""
    frame.attrs["corpus_id"] = corpus_id or ""
    return frame


def _eval_run(specs, eval_run: str | None) -> RunEntry:
    runs = [s.run for s in specs if s.run is not None]
    source = comparable_run(eval_run) if eval_run else (runs[0] if runs else None)
    if source is None:
        raise UserError("Perplexity needs a run's eval set: pick at least one finished run (or name one).")
    if not source.folder.eval_set_path.exists():
        raise UserError(f"Run {source.run_id} has no {source.folder.eval_set_path.name} (it was deleted): "
                        "pick another run.")
    return source


def corpus_eval_set(corpus_id: str, tokenizer_ref: str, rows: int, chunk_size: int = 128) -> dict:
    """A masked eval set from a corpus's test split, masked once with the training defaults (15%, seed 42),
    so every model is scored on the same masked positions of the user's own domain."""
    from engine.data.corpus import config_for, prepare
    from engine.models import max_length_of
    from engine.training.config import TrainConfig
    from engine.training.eval_set import build_eval_set

    tokenizer = cached_tokenizer(tokenizer_ref)
    size = min(chunk_size, max_length_of(tokenizer_ref))
    test = prepare(config_for(corpus_id), tokenizer, size, max_length_of(tokenizer_ref)).chunks["test"]
    columns = {k: np.asarray(v)[:rows] for k, v in test.items()}
    return build_eval_set(columns, tokenizer, TrainConfig())


# ---------------------------------------------------------------- links


@dataclass(frozen=True)
class CompareLink:
    models: tuple[str, ...]
    text: str = ""


def build_link(link: CompareLink, page_url: str = "") -> str:
    from urllib.parse import quote, urlencode

    query = urlencode({"compare": ",".join(link.models), "text": link.text}, quote_via=quote, safe=",")
    return f"{page_url.split('?', 1)[0]}?{query}"


def parse_link(params) -> CompareLink | None:
    """A `?compare=<run>,<run>&text=...` query (a mapping or a URL) as a CompareLink; None without compare."""
    from urllib.parse import parse_qsl, urlsplit

    if isinstance(params, str):
        params = dict(parse_qsl(urlsplit(params).query, keep_blank_values=True))
    raw = (params or {}).get("compare")
    if raw is None:
        return None
    models = tuple(dict.fromkeys(m.strip() for m in str(raw).split(",") if m.strip()))
    return CompareLink(models, str(params.get("text", "") or ""))


def check_link(link: CompareLink) -> None:
    """Unknown runs in a shared link get one message naming them all."""
    if not link.models:
        raise UserError("The link's ?compare= names no model: add run ids separated by commas.")
    unknown = [m for m in link.models if m != BASE and RunFolder.find(m) is None]
    if unknown:
        raise UserError(f"The link names runs that are not on this server: {', '.join(unknown)}. "
                        "Pick models from the list instead.")
    model_specs(list(link.models))  # the same checks as a click: count, state, files
