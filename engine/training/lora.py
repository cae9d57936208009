"""Wrap a masked-LM in LoRA adapters with peft, and reload one to continue training.

peft has no masked-LM task type, so `task_type` stays unset: the wrapped model is a
plain PeftModel whose base weights, MLM head included, are all frozen, and only the
LoRA matrices train. The adapter therefore holds the LoRA weights alone, and its
`adapter_config.json` names the base by the user's own reference ("bundled", a folder
or a Hub id), which `engine.models.resolve` accepts when the adapter is loaded again.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from engine.architectures import HEAD_TRANSFORM, LORA_TARGETS
from engine.errors import UserError
from engine.training.config import TrainConfig


def base_reference(model_ref: str) -> str:
    """What the adapter should name as its base: folders absolute, so they resolve from anywhere."""
    path = Path(model_ref).expanduser()
    return str(path.resolve()) if model_ref not in ("", "bundled") and path.is_dir() else (model_ref or "bundled")


def linear_suffixes(model: nn.Module) -> list[str]:
    """The last name part of every Linear layer: what LoRA target modules may name."""
    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)})


def target_modules(cfg: TrainConfig, model_type: str) -> list[str]:
    if cfg.lora_targets:
        return list(cfg.lora_targets)
    if model_type not in LORA_TARGETS:
        raise UserError(
            f"No default LoRA target modules for model type {model_type!r}: "
            f"name them in the target modules field."
        )
    return list(LORA_TARGETS[model_type])


def check_targets(model: nn.Module, targets: list[str]) -> None:
    """Every target must name a module (peft itself only complains when none matches)."""
    names = [name for name, _ in model.named_modules()]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        raise UserError(
            f"LoRA target module(s) {', '.join(missing)} do not exist in this model. "
            f"Its Linear layers are: {', '.join(linear_suffixes(model))}."
        )


def head_modules(cfg: TrainConfig, model_type: str) -> list[str]:
    """The head transform to train in full next to LoRA, when asked for (see TrainConfig)."""
    if not cfg.lora_train_head:
        return []
    if model_type not in HEAD_TRANSFORM:
        raise UserError(
            f"Training the MLM head with LoRA is not set up for model type {model_type!r}: it has no head "
            f"transform known here (EuroBERT's head is the vocabulary projection alone). Untick the option; "
            f"types with one: {', '.join(sorted(HEAD_TRANSFORM))}.")
    return list(HEAD_TRANSFORM[model_type])


def wrap_lora(model: nn.Module, cfg: TrainConfig, model_type: str, model_ref: str):
    """A PeftModel with fresh LoRA matrices on the target modules; everything else frozen."""
    from peft import LoraConfig, get_peft_model

    targets = target_modules(cfg, model_type)
    check_targets(model, targets)
    config = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=targets, bias="none", modules_to_save=head_modules(cfg, model_type) or None,
    )
    peft_model = get_peft_model(model, config)
    _name_base(peft_model, model_ref)
    return peft_model


def load_adapter(base: nn.Module, adapter_dir: Path, model_ref: str):
    """Resume: the base with a saved adapter whose LoRA matrices keep training."""
    from peft import PeftModel

    peft_model = PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=True)
    _name_base(peft_model, model_ref)
    return peft_model


def _name_base(peft_model, model_ref: str) -> None:
    # peft records the base's internal name_or_path (the bundled package's folder inside
    # site-packages); the user's reference survives reinstalls and moves.
    for config in peft_model.peft_config.values():
        config.base_model_name_or_path = base_reference(model_ref)


def count_params(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters; parameters() yields tied weights once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
