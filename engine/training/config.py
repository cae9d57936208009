"""TrainConfig: every setting of a run, one typed field each, and the one place that checks them.

Defaults follow the course (lr 2e-5 full / 2e-4 LoRA, weight decay 0.01, chunk 128,
masking 0.15, 10,000 train / 1,000 test chunks, 3 epochs; batch 64 on GPU, smaller on
CPU). Each field carries what the rest of the code needs to know about it (its help text,
its label in messages, its range), so a new hyperparameter is one field here plus one
widget in components/training_form.py: `python -m engine train` derives its flags from
these fields (engine/cli/train.py), /start_training takes them as JSON, and validated()
checks them all.
"""

from __future__ import annotations

import json
import time
import unicodedata
from dataclasses import asdict, dataclass, field, fields

from engine.data.corpus import CorpusConfig
from engine.errors import UserError
from engine.numbers import check_chunk_size
from engine.training.pinned import MAX_PROMPTS, check_prompts, split_prompts
from engine.validation import SEED_MAX, check, quote, type_name

METHODS = ("full", "lora")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
COMPILE_MODES = ("off", "on", "cudagraphs")  # engine/training/compiled.py
RECORD_KEYS = ("run_id", "created_at")  # what jobs writes next to the settings in a run's config.json
NAME_MAX, NOTES_MAX = 120, 2000


def default_lr(method: str) -> float:
    return 2e-4 if method == "lora" else 2e-5


def default_batch_size(on_gpu: bool) -> int:
    return 64 if on_gpu else 16


def setting(default, help: str, *, label: str = "", aliases: tuple[str, ...] = (), cli: bool = True,
            choices: tuple | None = None, minimum: float | None = None, above: float | None = None,
            below: float | None = None, maximum: float | None = None, parse=None, lora_only: bool = False):
    """A TrainConfig field and what is known about it.

    help: the CLI's --help text. label: the field in messages (default: its name in words).
    aliases: more CLI flags (--lr). cli=False: not a flag of its own (the corpus has several).
    choices, minimum / maximum (inclusive), above / below (exclusive): the range validated() checks
    (every number is also bounded by engine.validation's limits, every text in length).
    parse: the field's own parser (the chunk-size rule). lora_only: checked for LoRA runs only.
    """
    meta = dict(help=help, label=label, aliases=aliases, cli=cli, choices=choices, minimum=minimum,
                above=above, below=below, maximum=maximum, parse=parse, lora_only=lora_only)
    kind = "default_factory" if callable(default) else "default"
    return field(**{kind: default}, metadata=meta)


# Upper bounds a request may ask for: far past any sensible run, short of one that outlives the
# machine (1e9 epochs was accepted as a 97-year run).
MAX_EPOCHS = 1_000
MAX_STEPS = 10_000_000

@dataclass
class TrainConfig:
    model: str = setting("bundled", "'bundled' (all-MiniLM-L6-v2), a Hub id or a folder with a saved model")
    corpus: CorpusConfig = setting(CorpusConfig, "the corpus (--dataset, --text-column, --max-docs)", cli=False)
    chunk_size: int = setting(128, "tokens per chunk", parse=check_chunk_size)
    train_size: int = setting(10_000, "training chunks, downsampled with the seed (0 = all)", minimum=0)
    test_size: int = setting(1_000, "evaluation chunks (0 = all)", minimum=0)
    method: str = setting("full", "full or lora", choices=METHODS)
    lora_r: int = setting(8, "LoRA rank r", label="LoRA rank r", minimum=1, maximum=4096, lora_only=True)
    lora_alpha: int = setting(16, "LoRA alpha (scale alpha / r)", label="LoRA alpha", above=0, lora_only=True)
    lora_dropout: float = setting(0.05, "dropout on the LoRA input", label="LoRA dropout", minimum=0, below=1,
                                  lora_only=True)
    lora_targets: list[str] = setting(list, "LoRA target modules, comma-separated (empty: the "
                                            "architecture's default)", label="LoRA target modules")
    # Also train the MLM head's small transform layer (not the tied vocabulary matrix) in full.
    # The bundled MiniLM ships no MLM head: with LoRA alone its random head stays frozen.
    lora_train_head: bool = setting(False, "with LoRA, also train the MLM head's transform in full "
                                           "(needed for the bundled MiniLM, which has no trained head)")
    whole_word_mask: bool = setting(False, "whole-word masking", aliases=("whole-word",))
    mlm_probability: float = setting(0.15, "share of tokens masked", label="masking probability", above=0, below=1)
    learning_rate: float = setting(2e-5, "peak learning rate (default: 2e-5 full, 2e-4 LoRA)", aliases=("lr",),
                                   above=0)
    weight_decay: float = setting(0.01, "AdamW weight decay, never on biases or LayerNorm weights", minimum=0)
    warmup_steps: int = setting(0, "linear warm-up steps", minimum=0)
    max_grad_norm: float = setting(1.0, "gradient clipping norm (0 = none)", label="gradient clipping norm",
                                   minimum=0)
    grad_accum_steps: int = setting(1, "micro-batches per optimizer step", label="gradient accumulation", minimum=1)
    batch_size: int = setting(16, "chunks per micro-batch", minimum=1, maximum=65_536)
    epochs: float = setting(3.0, "passes over the training chunks", minimum=0, maximum=MAX_EPOCHS)
    max_steps: int = setting(0, "optimizer steps; > 0 overrides epochs", minimum=0, maximum=MAX_STEPS)
    eval_every: int = setting(100, "optimizer steps between evaluations (0 = only before and after)",
                              label="eval interval", minimum=0)
    log_every: int = setting(10, "optimizer steps between log rows", label="log interval", minimum=1)
    save_every: int = setting(200, "optimizer steps between checkpoints (0 = none)", label="save interval",
                              minimum=0)
    precision: str = setting("auto", "auto: fp32 on CPU, bf16 (or fp16) mixed precision on GPU", choices=PRECISIONS)
    compile: str = setting("off", "compile the training step: off | on (torch.compile) | cudagraphs (also CUDA "
                                  "graphs; GPU only); pays off on long GPU runs (docs/gpu.md)", choices=COMPILE_MODES)
    seed: int = setting(42, "seed of the data order, the masks and the LoRA init", minimum=0, maximum=SEED_MAX)
    # Not training settings: how people tell runs apart (history, Compare, share pages).
    name: str = setting("", f"the run's name (at most {NAME_MAX} characters; empty: model, method, corpus "
                            "and time)", maximum=NAME_MAX, parse=lambda v, label: clean_text(v, NAME_MAX, True))
    notes: str = setting("", f"free notes about the run (at most {NOTES_MAX} characters)", maximum=NOTES_MAX,
                         parse=lambda v, label: clean_text(v, NOTES_MAX, False))
    pinned_prompts: list[str] = setting(list, f"up to {MAX_PROMPTS} fill-mask prompts, one per line, each with one "
                                              "[MASK]: their top-3 guesses are recorded at every evaluation",
                                        parse=check_prompts)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, raw: dict) -> TrainConfig:
        """A validated config from JSON-like settings (the API, a config file, the form)."""
        if not isinstance(raw, dict):
            raise UserError(f"Training settings must be an object of fields, got {quote(raw)}.")
        unknown = set(raw) - {f.name for f in fields(cls)}
        if unknown:
            names = ", ".join(sorted(str(u)[:40] for u in unknown)[:5])
            raise UserError(f"Unknown training setting(s): {names}.")
        return cls(**raw).validated()

    @classmethod
    def from_record(cls, raw: dict) -> TrainConfig:
        """The config a run's config.json records (the settings, plus its id and creation time)."""
        return cls.from_dict({k: v for k, v in raw.items() if k not in RECORD_KEYS})

    def validated(self) -> TrainConfig:
        """Coerce every field to its type and check its range; raise UserError naming the bad field."""
        self.corpus = _corpus(self.corpus)
        if isinstance(self.lora_targets, str):
            self.lora_targets = [t.strip() for t in self.lora_targets.split(",") if t.strip()]
        self.pinned_prompts = split_prompts(self.pinned_prompts)
        for f in fields(self):
            setattr(self, f.name, _checked(f, getattr(self, f.name), self.method))
        if self.learning_rate >= 1:
            raise UserError(f"Learning rate {self.learning_rate} is far too large (use e.g. 2e-5).")
        if self.max_steps < 1 and self.epochs <= 0:
            raise UserError("Set max steps of at least 1 or a positive number of epochs.")
        return self


def clean_text(value, limit: int, one_line: bool) -> str:
    """A name or notes as kept: control characters dropped (notes keep line breaks and tabs),
    at most `limit` characters. HTML stays as typed and is escaped wherever it is shown."""
    keep = "" if one_line else "\n\t"
    text = "".join(c for c in str(value or "") if c in keep or unicodedata.category(c)[0] != "C")
    text = " ".join(text.split()) if one_line else text.strip()
    return text[:limit]


def default_name(cfg: TrainConfig, when: float) -> str:
    """'<model> · <method> · <corpus> · <time>': what a run is called until someone names it."""
    corpus = cfg.corpus
    where = corpus.corpus_id or corpus.hub_id or corpus.source
    if corpus.source == "stored" and corpus.corpus_id:
        try:
            from engine.data import store

            where = store.get(corpus.corpus_id).name
        except UserError:
            pass
    model = cfg.model.rstrip("/").rsplit("/", 1)[-1]
    return clean_text(f"{model} · {cfg.method} · {where} · {time.strftime('%m-%d %H:%M', time.localtime(when))}",
                      NAME_MAX, one_line=True)


def label(f) -> str:
    """How messages name a field: its label, or its name in words ("Batch size")."""
    text = f.metadata.get("label") or f.name.replace("_", " ")
    return text[0].upper() + text[1:]


def _checked(f, value, method: str):
    meta = f.metadata
    if meta.get("parse"):  # its own rule, after the type: no bool, no 1e30
        return meta["parse"](check(value, type_name(f.type), label(f), maximum=meta.get("maximum")), label=label(f))
    value = check(value, type_name(f.type), label(f), maximum=meta.get("maximum"))
    if meta.get("lora_only") and method != "lora":
        return value
    problem = _out_of_range(value, meta)
    if problem:
        raise UserError(f"{label(f)} {problem}, got {quote(value)}.")
    return value


def _out_of_range(value, meta) -> str:
    """What is wrong with a value against the field's choices and bounds ("" when nothing)."""
    low, high, floor = meta.get("above"), meta.get("below"), meta.get("minimum")
    if meta.get("choices") is not None and value not in meta["choices"]:
        return f"must be one of {meta['choices']}"
    if low is not None and high is not None and not low < value < high:
        return f"must be between {low:g} and {high:g}"
    if floor is not None and high is not None and not floor <= value < high:
        return f"must be in [{floor:g}, {high:g})"
    if low is not None and value <= low:
        return f"must be above {low:g}"
    if floor is not None and value < floor:
        return "cannot be negative" if floor == 0 else f"must be at least {floor:g}"
    if meta.get("maximum") is not None and value > meta["maximum"]:
        return f"must be at most {quote(meta['maximum'])}"
    return ""


# CorpusConfig's fields carry no metadata (engine.data stays free of these rules): their ranges here.
CORPUS_RANGES = {"seed": {"minimum": 0, "maximum": SEED_MAX}, "max_docs": {"minimum": 0},
                 "test_fraction": {"above": 0, "below": 1}}


def _corpus(corpus) -> CorpusConfig:
    """The corpus as a CorpusConfig whose every field has its declared type and range."""
    if not isinstance(corpus, CorpusConfig | dict):
        raise UserError(f"Corpus must be an object of corpus settings like {{\"source\": \"imdb\"}}, "
                        f"got {quote(corpus)}.")
    raw = asdict(corpus) if isinstance(corpus, CorpusConfig) else corpus
    known = {f.name: f for f in fields(CorpusConfig)}
    bad = set(raw) - set(known)
    if bad:
        names = ", ".join(sorted(str(b)[:40] for b in bad)[:5])
        raise UserError(f"Unknown corpus setting(s): {names}; known: {', '.join(sorted(known))}.")
    checked = {}
    for name, value in raw.items():
        what = f"Corpus {name.replace('_', ' ')}"
        checked[name] = check(value, type_name(known[name].type), what)
        problem = _out_of_range(checked[name], CORPUS_RANGES.get(name, {}))
        if problem:
            raise UserError(f"{what} {problem}, got {quote(value)}.")
    return CorpusConfig(**checked)
