"""Checks a run must pass before it is queued, so that bad input gets a message at once
instead of a failed run minutes later: the model exists, the LoRA target modules exist
in it, the chunk fits the model, and each corpus split holds at least one chunk.

They are cheap: the model is built on the meta device (no weights are loaded) and the
corpus is tokenized only when a word count cannot already prove it is big enough.
"""

from __future__ import annotations

from engine.errors import UserError
from engine.numbers import check_chunk_size
from engine.training.config import TrainConfig


def check_runnable(cfg: TrainConfig) -> None:
    from engine.models import max_length_of, resolve

    src = resolve(cfg.model)
    check_chunk_size(cfg.chunk_size, max_length_of(cfg.model))
    if cfg.method == "lora":
        check_lora_targets(cfg, src)
    check_corpus_size(cfg)


def meta_model(src: str):
    """The model built on the meta device: its module tree without loading any weights."""
    import torch
    from transformers import AutoConfig, AutoModelForMaskedLM

    try:
        config = AutoConfig.from_pretrained(src)
    except (OSError, ValueError) as exc:
        raise UserError(f"Could not read the model configuration of {src!r}: {exc}") from exc
    with torch.device("meta"):
        return AutoModelForMaskedLM.from_config(config)


def check_lora_targets(cfg: TrainConfig, src: str) -> list[str]:
    """The targets LoRA will use (the architecture's default when none are named), all present."""
    from pathlib import Path

    from engine.training.lora import check_targets, target_modules

    if (Path(src) / "adapter_config.json").exists():
        raise UserError("That folder holds a LoRA adapter: pick its base model (or a full model) to train LoRA on.")
    model = meta_model(src)
    targets = target_modules(cfg, model.config.model_type)
    check_targets(model, targets)
    return targets


def check_corpus_size(cfg: TrainConfig) -> None:
    from engine.data.corpus import load_corpus, prepare
    from engine.models import cached_tokenizer, max_length_of

    corpus = load_corpus(cfg.corpus)
    if all(_words_at_least(corpus[split], cfg.chunk_size) for split in ("train", "test")):
        return  # each word is at least one token: every split holds a full chunk
    # A small corpus: tokenizing it is quick, and prepare() says exactly what is missing.
    prepare(cfg.corpus, cached_tokenizer(cfg.model), cfg.chunk_size, max_length_of(cfg.model))


def _words_at_least(split, wanted: int) -> bool:
    count = 0
    for batch in split.iter(batch_size=256):
        count += sum(len(str(t or "").split()) + 2 for t in batch["text"])  # + [CLS] and [SEP]
        if count >= wanted:
            return True
    return False


def default_lora_targets(model_ref: str) -> list[str]:
    """What LoRA adapts in this model when no target modules are named (from its config only)."""
    from engine.architectures import LORA_TARGETS
    from engine.errors import UserError
    from engine.models import model_type_of

    try:
        return list(LORA_TARGETS.get(model_type_of(model_ref), []))
    except UserError:
        return []
