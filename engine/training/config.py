"""TrainConfig: every setting of a run, one typed field each.

Defaults follow the course (lr 2e-5 full / 2e-4 LoRA, weight decay 0.01, chunk 128,
masking 0.15, 10,000 train / 1,000 test chunks, 3 epochs; batch 64 on GPU, smaller on
CPU). A new hyperparameter is one field here plus one widget in components/training.py.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields

from engine.data.corpus import CorpusConfig
from engine.errors import UserError

METHODS = ("full", "lora")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")

# peft knows BERT/RoBERTa targets by itself but not DistilBERT's; we name them all.
LORA_TARGETS = {
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "xlm-roberta": ["query", "value"],
    "camembert": ["query", "value"],
    "electra": ["query", "value"],
    "distilbert": ["q_lin", "v_lin"],
    "albert": ["query", "value"],
    "deberta-v2": ["query_proj", "value_proj"],
    "modernbert": ["Wqkv"],
}

# The MLM head's transform (dense + LayerNorm before the tied vocabulary projection), as
# peft modules_to_save names: small (hidden^2 weights), unlike the 30,522-row decoder.
HEAD_TRANSFORM = {
    "bert": ["transform"],
    "electra": ["generator_predictions"],
    "roberta": ["lm_head.dense", "lm_head.layer_norm"],
    "xlm-roberta": ["lm_head.dense", "lm_head.layer_norm"],
    "camembert": ["lm_head.dense", "lm_head.layer_norm"],
    "distilbert": ["vocab_transform", "vocab_layer_norm"],
}


def default_lr(method: str) -> float:
    return 2e-4 if method == "lora" else 2e-5


def default_batch_size(on_gpu: bool) -> int:
    return 64 if on_gpu else 16


@dataclass
class TrainConfig:
    model: str = "bundled"
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    chunk_size: int = 128
    train_size: int = 10_000  # chunks, downsampled with the seed (0 = all)
    test_size: int = 1_000
    method: str = "full"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=list)  # empty: the architecture's default
    # Also train the MLM head's small transform layer (not the tied vocabulary matrix) in full.
    # The bundled MiniLM ships no MLM head: with LoRA alone its random head stays frozen.
    lora_train_head: bool = False
    whole_word_mask: bool = False
    mlm_probability: float = 0.15
    learning_rate: float = 2e-5
    weight_decay: float = 0.01  # never on biases or LayerNorm weights
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    grad_accum_steps: int = 1
    batch_size: int = 16
    epochs: float = 3.0
    max_steps: int = 0  # > 0 overrides epochs
    eval_every: int = 100  # optimizer steps between evaluations (0 = only before and after)
    log_every: int = 10
    save_every: int = 200  # optimizer steps between checkpoints
    precision: str = "auto"  # auto: fp32 on CPU, bf16 (or fp16) mixed precision on GPU
    compile: str = "off"  # off | on (torch.compile) | cudagraphs (also CUDA graphs): engine/training/compiled.py
    seed: int = 42

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, raw: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise UserError(f"Unknown training setting(s): {', '.join(sorted(unknown))}.")
        values = dict(raw)
        if isinstance(values.get("corpus"), dict):
            corpus_fields = {f.name for f in fields(CorpusConfig)}
            bad = set(values["corpus"]) - corpus_fields
            if bad:
                raise UserError(
                    f"Unknown corpus setting(s): {', '.join(sorted(bad))}; known: {', '.join(sorted(corpus_fields))}."
                )
            values["corpus"] = CorpusConfig(**values["corpus"])
        if isinstance(values.get("lora_targets"), str):
            values["lora_targets"] = [t.strip() for t in values["lora_targets"].split(",") if t.strip()]
        return cls(**values).validated()

    def validated(self) -> TrainConfig:
        """Coerce numeric fields and check ranges; raise UserError naming the bad field."""
        for f in fields(self):
            if f.type in ("int", "float"):
                setattr(self, f.name, _number(f.name, getattr(self, f.name), int if f.type == "int" else float))
        checks = [
            (self.method in METHODS, f"method must be one of {METHODS}, got {self.method!r}"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}"),
            (self.learning_rate > 0, f"learning rate must be above 0, got {self.learning_rate}"),
            (self.learning_rate < 1, f"learning rate {self.learning_rate} is far too large (use e.g. 2e-5)"),
            (self.batch_size >= 1, f"batch size must be at least 1, got {self.batch_size}"),
            (self.grad_accum_steps >= 1, f"gradient accumulation must be at least 1, got {self.grad_accum_steps}"),
            (0 < self.mlm_probability < 1, f"masking probability must be between 0 and 1, got {self.mlm_probability}"),
            (self.weight_decay >= 0, f"weight decay cannot be negative, got {self.weight_decay}"),
            (self.warmup_steps >= 0, f"warmup steps cannot be negative, got {self.warmup_steps}"),
            (self.max_grad_norm >= 0, f"gradient clipping norm cannot be negative, got {self.max_grad_norm}"),
            (self.max_steps >= 0, f"max steps cannot be negative, got {self.max_steps}"),
            (self.max_steps >= 1 or self.epochs > 0, "set max steps of at least 1 or a positive number of epochs"),
            (self.chunk_size >= 8, f"chunk size must be at least 8 tokens, got {self.chunk_size}"),
            (self.train_size >= 0 and self.test_size >= 0, "train and test sizes cannot be negative"),
            (self.eval_every >= 0 and self.save_every >= 0, "eval and save intervals cannot be negative"),
            (self.log_every >= 1, f"log interval must be at least 1, got {self.log_every}"),
        ]
        if self.method == "lora":
            checks += [
                (self.lora_r >= 1, f"LoRA rank r must be at least 1, got {self.lora_r}"),
                (self.lora_alpha > 0, f"LoRA alpha must be above 0, got {self.lora_alpha}"),
                (0 <= self.lora_dropout < 1, f"LoRA dropout must be in [0, 1), got {self.lora_dropout}"),
            ]
        for ok, message in checks:
            if not ok:
                raise UserError(message[0].upper() + message[1:] + ".")
        return self


def _number(name: str, value, kind):
    try:
        number = kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        raise UserError(f"{name.replace('_', ' ').capitalize()} must be a number, got {value!r}.") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise UserError(f"{name.replace('_', ' ').capitalize()} must be a finite number, got {value!r}.")
    return number
