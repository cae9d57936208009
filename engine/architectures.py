"""What the app knows about each masked-LM architecture, by transformers' `model_type`.

One table, read by training (LoRA targets, the head transform trained next to LoRA), the
Costs tab (its default LoRA targets) and the model panels (is the MLM head trained?), so
that none of them keeps its own copy that could disagree with another. No heavy imports:
costs/ and the UI read it without loading torch or the training code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Architecture:
    lora_targets: tuple[str, ...]  # LoRA's default target modules
    # The MLM head's transform (dense + LayerNorm before the tied vocabulary projection), as
    # peft modules_to_save names: small (hidden^2 weights), unlike the 30,522-row decoder.
    head_transform: tuple[str, ...] = ()
    mask_rate: float = 0.15  # the masking probability the family was pretrained with


# peft knows BERT/RoBERTa targets by itself but not DistilBERT's; we name them all.
ARCHITECTURES = {
    "bert": Architecture(("query", "value"), ("transform",)),
    "roberta": Architecture(("query", "value"), ("lm_head.dense", "lm_head.layer_norm")),
    "xlm-roberta": Architecture(("query", "value"), ("lm_head.dense", "lm_head.layer_norm")),
    "camembert": Architecture(("query", "value"), ("lm_head.dense", "lm_head.layer_norm")),
    "electra": Architecture(("query", "value"), ("generator_predictions",)),
    "distilbert": Architecture(("q_lin", "v_lin"), ("vocab_transform", "vocab_layer_norm")),
    "albert": Architecture(("query", "value")),
    "deberta-v2": Architecture(("query_proj", "value_proj")),
    # ModernBERT fuses q, k and v into one Wqkv; its head is dense + GELU + LayerNorm ("head"),
    # then the decoder tied to the embeddings.
    "modernbert": Architecture(("Wqkv",), ("head",), mask_rate=0.30),
    # EuroBERT: Llama-style layers (q/k/v/o_proj, grouped-query attention, SwiGLU, RMSNorm); its MLM
    # head is the vocabulary projection alone (lm_head), with no transform to train beside LoRA.
    "eurobert": Architecture(("q_proj", "v_proj")),
}

BERT_MASK_RATE = 0.15
# Why a family's default masking rate is what it is, shown next to the setting.
MASK_RATE_REASONS = {
    "modernbert": "ModernBERT was pretrained with 30% of tokens masked (Warner et al., 2024, after Wettig et "
                  "al., 2023, who found higher rates train better encoders); continuing at its own rate keeps "
                  "the task it learned.",
}
BERT_REASON = "15%, the rate BERT was pretrained with (Devlin et al., 2019) and the course's default."


# Every family's default: a value among these was offered, not chosen, so a new model may replace it.
DEFAULT_MASK_RATES = frozenset({a.mask_rate for a in ARCHITECTURES.values()} | {BERT_MASK_RATE})


def masking_default(model_type: str) -> tuple[float, str]:
    """The masking probability to offer for a model type, and the one-line reason."""
    arch = ARCHITECTURES.get(model_type)
    rate = arch.mask_rate if arch else BERT_MASK_RATE
    return rate, MASK_RATE_REASONS.get(model_type, BERT_REASON)


# The tables the rest of the code reads (lists, as peft and the JSON configs take them).
LORA_TARGETS = {k: list(a.lora_targets) for k, a in ARCHITECTURES.items()}
HEAD_TRANSFORM = {k: list(a.head_transform) for k, a in ARCHITECTURES.items() if a.head_transform}

# State-dict prefixes of the MLM heads (BERT's cls., RoBERTa's lm_head., DistilBERT's vocab_*,
# ELECTRA's generator_*, ModernBERT's head. and decoder.): a folder that lacks them (the bundled
# MiniLM) gets a random head.
HEAD_WEIGHT_PREFIXES = ("cls.", "lm_head.", "vocab_", "generator_", "head.", "decoder.")
# Whole MLM heads as peft modules_to_save may name them, next to the transforms above.
_WHOLE_HEADS = ("cls", "lm_head", "predictions", "vocab_projector")
HEAD_MODULES = frozenset(_WHOLE_HEADS) | {m for a in ARCHITECTURES.values() for m in a.head_transform}


def saves_head(modules_to_save: Iterable[str] | None) -> bool:
    """A LoRA adapter whose modules_to_save hold the MLM head (or its transform) carries a
    head trained by its run (TrainConfig.lora_train_head)."""
    return any(m in HEAD_MODULES for m in modules_to_save or ())


def head_trained(missing_keys: Iterable[str], modules_to_save: Iterable[str] | None = ()) -> bool:
    """THE rule for "is this model's MLM head trained?": its weights were in the folder
    loaded, or a LoRA adapter on top trained and saved it."""
    loaded = not any(k.startswith(HEAD_WEIGHT_PREFIXES) for k in missing_keys)
    return loaded or saves_head(modules_to_save)


# The modules a sequence classifier adds on top of the encoder (named as peft's modules_to_save):
# they start from seeded random weights for every start model (an MLM run saves no pooler), and
# under LoRA they train in full beside the adapters.
CLASSIFIER_HEAD = {
    "bert": ["pooler", "classifier"],
    "albert": ["pooler", "classifier"],
    "deberta-v2": ["pooler", "classifier"],
    "distilbert": ["pre_classifier", "classifier"],
    "modernbert": ["head", "classifier"],
    "eurobert": ["dense", "classifier"],
}
DEFAULT_CLASSIFIER_HEAD = ["classifier"]  # RoBERTa, XLM-R, CamemBERT, ELECTRA: dense + out_proj inside "classifier"


def classifier_head(model_type: str) -> list[str]:
    """The classifier-head modules of a model type (training saves them; costs count them)."""
    return list(CLASSIFIER_HEAD.get(model_type, DEFAULT_CLASSIFIER_HEAD))
