"""ClassifyConfig: every setting of a classifier run (a task model trained from a base or an adapted MLM).

The recipe is the textbook's (section 3.5): a sequence classifier on the encoder, AdamW with weight
decay 0.01, gradient clipping at 1.0, batch 16, 128 tokens; LoRA r=8, alpha 16, dropout 0.1 on
query/value with the classifier head trained alongside. Only the learning rates differ from its
table, on purpose: see LEARNING_RATE_GUIDANCE. A new setting is one field here (plus its help in
FIELD_HELP): the CLI flags derive from these fields.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields

from engine.architectures import CLASSIFIER_HEAD, classifier_head  # noqa: F401 (CLASSIFIER_HEAD re-exported)
from engine.data.corpus import CorpusConfig
from engine.errors import UserError
from engine.training.config import MAX_EPOCHS

KIND = "classify"  # config.json's "kind": how the runs layer tells a classifier run from an MLM run
METHODS = ("full", "lora")
MAX_CLASSES = 100  # more distinct values than this is a free-text or numeric column, not a label
MAX_BATCH = 65_536  # as TrainConfig's batch size
MAX_EXAMPLES = 10_000_000

# Measured defaults (docs/classify.md): bundled MiniLM, 2,000 IMDb reviews, one epoch, 128 tokens.
DEFAULT_LR = {"full": 1e-4, "lora": 3e-3}
TEXTBOOK_LR = {"full": 2e-5, "lora": 2e-4}

LEARNING_RATE_GUIDANCE = (
    "Defaults: full fine-tuning 1e-4, LoRA 3e-3; the textbook's table says 2e-5 (1e-5 to 5e-5) and 2e-4 "
    "(1e-4 to 3e-4). The textbook trains bert-base (110M parameters) for three epochs on short, easy "
    "sentences; here a small encoder (the bundled 22M-parameter MiniLM) sees 2,000 long reviews once: "
    "125 optimizer steps, with the rate warming up over the first 10% and decaying linearly to zero. "
    "With so few steps the textbook's rates barely move the weights. Measured on the bundled MiniLM and "
    "IMDb (1,000 held-out reviews): full fine-tuning 0.799 accuracy at 5e-5, 0.825 at 1e-4, 0.814 at "
    "1.5e-4 (an earlier check with a constant rate: 0.781 at 2e-5); LoRA (r=8, query/value) 0.812 at "
    "3e-3, 0.809 at 5e-3 (earlier check: 0.575 at 2e-4, 0.783 at 1e-3). LoRA needs the larger rate because "
    "its update is the product of two small matrices, one starting at zero. For a bigger model or many "
    "more steps, move back towards the textbook's rates."
)


FIELD_HELP = {
    "model": "start model: 'bundled', a folder (a finished MLM run's final/ too) or a Hub id",
    "seed": "draws the train/test subsets, the head's initial weights and the batch order",
    "train_size": "labelled training examples drawn from the corpus's train split (0 = all)",
    "test_size": "held-out examples drawn from the corpus's test split (0 = all)",
    "max_length": "tokens per text; longer texts are truncated",
    "method": "full (every weight trains) or lora (adapters on the attention, head in full)",
    "learning_rate": "0 = the method's default (1e-4 full, 3e-3 LoRA; see docs/classify.md)",
    "epochs": "passes over the training examples",
    "batch_size": "examples per optimizer step",
    "weight_decay": "AdamW weight decay (never on biases or LayerNorm weights)",
    "warmup_ratio": "share of the steps over which the rate rises linearly before decaying to 0",
    "max_grad_norm": "gradient clipping norm (0 = none)",
    "lora_r": "LoRA rank", "lora_alpha": "LoRA scaling alpha", "lora_dropout": "dropout on the LoRA input",
    "lora_targets": "comma-separated module names ('' = the architecture's query/value)",
    "eval_every": "optimizer steps between evaluations (0 = only at the end)",
    "log_every": "optimizer steps between train rows in metrics.jsonl",
}


def default_classify_lr(method: str) -> float:
    return DEFAULT_LR.get(method, DEFAULT_LR["full"])


def head_modules(model_type: str) -> list[str]:
    return classifier_head(model_type)


@dataclass
class ClassifyConfig:
    model: str = "bundled"
    corpus: CorpusConfig = field(default_factory=CorpusConfig)  # needs a label column
    seed: int = 42
    train_size: int = 2_000
    test_size: int = 1_000
    max_length: int = 128
    method: str = "full"
    learning_rate: float = 0.0  # 0: DEFAULT_LR[method], filled in by validated()
    epochs: float = 1.0
    batch_size: int = 16
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_targets: list[str] = field(default_factory=list)
    eval_every: int = 0
    log_every: int = 10

    def to_dict(self) -> dict:
        return {"kind": KIND, **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, raw: dict) -> ClassifyConfig:
        values = {k: v for k, v in raw.items() if k not in ("kind", "run_id", "created_at")}
        if raw.get("kind", KIND) != KIND:
            raise UserError(f"This is a {raw.get('kind')!r} run's config, not a classifier's.")
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise UserError(f"Unknown classifier setting(s): {', '.join(sorted(unknown))}.")
        if isinstance(values.get("corpus"), dict):
            corpus_fields = {f.name for f in fields(CorpusConfig)}
            bad = set(values["corpus"]) - corpus_fields
            if bad:
                raise UserError(f"Unknown corpus setting(s): {', '.join(sorted(bad))}.")
            values["corpus"] = CorpusConfig(**values["corpus"])
        if isinstance(values.get("lora_targets"), str):
            values["lora_targets"] = [t.strip() for t in values["lora_targets"].split(",") if t.strip()]
        return cls(**values).validated()

    def validated(self) -> ClassifyConfig:
        """Coerce numbers, check ranges (UserError naming the field), fill the default rate."""
        for f in fields(self):
            if f.type in ("int", "float"):
                setattr(self, f.name, _number(f.name, getattr(self, f.name), int if f.type == "int" else float))
        for ok, message in self._checks():
            if not ok:
                raise UserError(message[0].upper() + message[1:] + ".")
        if self.learning_rate == 0:
            self.learning_rate = default_classify_lr(self.method)
        return self

    def _checks(self) -> list[tuple[bool, str]]:
        checks = [
            (self.method in METHODS, f"method must be one of {METHODS}, got {self.method!r}"),
            (self.max_length >= 8, f"max length must be at least 8 tokens, got {self.max_length}"),
            (self.learning_rate >= 0, f"learning rate cannot be negative, got {self.learning_rate}"),
            (self.learning_rate < 1, f"learning rate {self.learning_rate} is far too large (use e.g. 5e-5)"),
            (self.batch_size >= 1, f"batch size must be at least 1, got {self.batch_size}"),
            (self.epochs > 0, f"epochs must be above 0, got {self.epochs}"),
            (self.epochs <= MAX_EPOCHS, f"epochs must be at most {MAX_EPOCHS:,}, got {self.epochs:,g}"),
            (self.batch_size <= MAX_BATCH, f"batch size must be at most {MAX_BATCH:,}, got {self.batch_size:,}"),
            (self.train_size <= MAX_EXAMPLES and self.test_size <= MAX_EXAMPLES,
             f"train and test sizes must be at most {MAX_EXAMPLES:,} (0 = the whole split)"),
            (self.train_size >= 0 and self.test_size >= 0, "train and test sizes cannot be negative"),
            (self.weight_decay >= 0, f"weight decay cannot be negative, got {self.weight_decay}"),
            (0 <= self.warmup_ratio < 1, f"warmup ratio must be in [0, 1), got {self.warmup_ratio}"),
            (self.max_grad_norm >= 0, f"gradient clipping norm cannot be negative, got {self.max_grad_norm}"),
            (self.eval_every >= 0, f"eval interval cannot be negative, got {self.eval_every}"),
            (self.log_every >= 1, f"log interval must be at least 1, got {self.log_every}"),
        ]
        if self.method == "lora":
            checks += [
                (self.lora_r >= 1, f"LoRA rank r must be at least 1, got {self.lora_r}"),
                (self.lora_alpha > 0, f"LoRA alpha must be above 0, got {self.lora_alpha}"),
                (0 <= self.lora_dropout < 1, f"LoRA dropout must be in [0, 1), got {self.lora_dropout}"),
            ]
        return checks


def check_max_length(max_length: int, model_max: int, model_ref: str) -> int:
    if max_length > model_max:
        raise UserError(
            f"Max length {max_length} is above the model's maximum of {model_max} tokens ({model_ref}): "
            f"use {model_max} or less."
        )
    return max_length


def _number(name: str, value, kind):
    try:
        number = kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        raise UserError(f"{name.replace('_', ' ').capitalize()} must be a number, got {value!r}.") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise UserError(f"{name.replace('_', ' ').capitalize()} must be a finite number, got {value!r}.")
    return number
