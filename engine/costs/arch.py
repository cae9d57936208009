"""Model architectures for the cost estimate, instantiated on the meta device.

A model built under `torch.device("meta")` has every parameter with its real shape but
no storage, so counting parameters is exact and free; peft's `get_peft_model` works on
it too, so LoRA's trainable count is peft's own, not a formula. Architectures come from
config files bundled in engine/costs/arch_configs/ (no network), the bundled MiniLM, a local
folder, or a Hub id (only `config.json` is fetched, never weights).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from engine.architectures import LORA_TARGETS
from engine.errors import UserError

ARCH_DIR = Path(__file__).parent / "arch_configs"
BUNDLED_ARCHS = tuple(sorted(p.stem for p in ARCH_DIR.glob("*.json")))
BUNDLED_REF = "bundled"
ARCH_CHOICES = (*BUNDLED_ARCHS, BUNDLED_REF)

# The layer layouts the activation replay knows (engine/costs/activations.py, modernbert.py), by
# transformers' model_type; any other type is refused with this list rather than guessed.
FAMILIES = {"bert": "bert", "roberta": "roberta", "xlm-roberta": "roberta", "camembert": "roberta",
            "distilbert": "distilbert", "modernbert": "modernbert"}
# Hub ids whose config ships in arch_configs/: their estimate needs no network.
HUB_ALIASES = {"answerdotai/ModernBERT-base": "modernbert-base", "answerdotai/ModernBERT-large": "modernbert-large",
               "google-bert/bert-base-uncased": "bert-base-uncased", "google-bert/bert-large-uncased":
               "bert-large-uncased", "distilbert/distilbert-base-uncased": "distilbert-base-uncased",
               "FacebookAI/roberta-base": "roberta-base", "FacebookAI/roberta-large": "roberta-large"}

# LoRA target presets per family; "all-linear" is peft's own shorthand (every Linear
# except the output layer, here the vocabulary projection).
_ATTENTION_ALL = {
    "bert": ["query", "key", "value", "attention.output.dense"],
    "roberta": ["query", "key", "value", "attention.output.dense"],
    "distilbert": ["q_lin", "k_lin", "v_lin", "out_lin"],
    "modernbert": ["Wqkv", "attn.Wo"],  # q, k and v are one fused matrix
}
ALL_LINEAR = "all-linear"


@dataclass(frozen=True)
class Arch:
    ref: str
    name: str
    model_type: str
    family: str  # bert | roberta | distilbert | modernbert (FAMILIES)
    layers: int
    hidden: int
    heads: int
    intermediate: int
    vocab: int
    max_length: int
    hidden_dropout: float
    attention_dropout: float
    config_json: str = field(repr=False)
    # ModernBERT: "full_attention" or "sliding_attention" per layer, and the sliding window (tokens)
    layer_types: tuple[str, ...] = ()
    window: int = 0

    def config(self):
        from transformers import AutoConfig

        raw = json.loads(self.config_json)
        return AutoConfig.for_model(raw.pop("model_type"), **raw)

    def info(self) -> dict:
        return {**{k: getattr(self, k) for k in ("name", "model_type", "layers", "hidden", "heads",
                                                 "intermediate", "vocab", "max_length")}, "note": self.note}

    @property
    def note(self) -> str:
        """What about this architecture changes the memory a reader expects (shown with the estimate)."""
        if self.family != "modernbert":
            return ""
        return (f"ModernBERT: {self.layer_types.count('sliding_attention')} of {self.layers} layers attend within "
                f"a {self.window}-token window. Under SDPA (transformers' default) that window is a mask: every "
                "score is still computed and each such layer keeps a batch x seq x seq mask for backward, which "
                "dominates memory at long sequences (flash-attention-2, a separate package, applies the window "
                "without a mask; this estimate assumes SDPA).")


def load_arch(ref: str | None) -> Arch:
    """An architecture from a bundled name, 'bundled', a folder or a Hub id (config only)."""
    ref = (ref or BUNDLED_REF).strip()
    return _load_arch(ref)


@lru_cache(maxsize=16)
def _load_arch(ref: str) -> Arch:
    raw = _config_dict(ref)
    model_type = raw.get("model_type", "")
    if not model_type:
        raise UserError(f"The config of {ref!r} names no model_type: it is not a transformers model.")
    if model_type not in FAMILIES:
        raise UserError(
            f"The cost model does not know the {model_type!r} architecture of {ref!r}: it knows "
            f"{', '.join(sorted(FAMILIES))} (bundled: {', '.join(BUNDLED_ARCHS)})."
        )
    g = raw.get
    layers = g("num_hidden_layers") or g("n_layers") or 0
    hidden = g("hidden_size") or g("dim") or 0
    heads = g("num_attention_heads") or g("n_heads") or 0
    max_len = int(g("max_position_embeddings", 512))
    if FAMILIES.get(model_type) == "roberta":
        max_len -= 2  # RoBERTa reserves two position slots for its padding offset
    return Arch(
        ref=ref,
        name=_display_name(ref),
        model_type=model_type,
        family=FAMILIES[model_type],
        layers=int(layers), hidden=int(hidden), heads=int(heads),
        intermediate=int(g("intermediate_size") or g("hidden_dim") or 4 * hidden),
        vocab=int(g("vocab_size", 0)),
        max_length=max_len,
        hidden_dropout=float(g("hidden_dropout_prob", g("dropout", g("mlp_dropout", 0.1))) or 0.0),
        attention_dropout=float(g("attention_probs_dropout_prob", g("attention_dropout", 0.1)) or 0.0),
        config_json=json.dumps(raw),
        layer_types=_layer_types(raw, int(layers)),
        window=int(g("local_attention") or 0),
    )


def _layer_types(raw: dict, layers: int) -> tuple[str, ...]:
    """ModernBERT's attention per layer: global every `global_attn_every_n_layers` (from layer 0),
    sliding-window otherwise, unless the config lists them (transformers 5's layer_types)."""
    if raw.get("model_type") != "modernbert":
        return ()
    if raw.get("layer_types"):
        return tuple(raw["layer_types"])
    every = int(raw.get("global_attn_every_n_layers") or 3)
    return tuple("full_attention" if i % every == 0 else "sliding_attention" for i in range(layers))


def _display_name(ref: str) -> str:
    from engine.models import BUNDLED_NAME

    return BUNDLED_NAME if ref in (BUNDLED_REF, BUNDLED_NAME) else ref


def _config_dict(ref: str) -> dict:
    from engine import models

    ref = HUB_ALIASES.get(ref, ref)
    if ref in BUNDLED_ARCHS:
        return json.loads((ARCH_DIR / f"{ref}.json").read_text())
    try:  # folder, bundled MiniLM, or Hub id; an id offline raises UserError
        src = models.resolve(ref)
    except UserError as exc:
        raise UserError(f"{exc} Bundled architectures: {', '.join(ARCH_CHOICES)}.") from exc
    folder = Path(src)
    if folder.is_dir():
        if (folder / "adapter_config.json").exists() and not (folder / "config.json").exists():
            base = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path")
            return _config_dict(base or BUNDLED_REF)
        return json.loads((folder / "config.json").read_text())
    from transformers import AutoConfig

    try:  # config.json only: the weights are never downloaded
        return AutoConfig.from_pretrained(src).to_dict()
    except (OSError, ValueError) as exc:
        raise UserError(f"Could not read the config of {ref!r} from the Hub: {exc}") from exc


# ---------------------------------------------------------------- meta models


def meta_model(arch: Arch, num_labels: int = 0):
    """The *ForMaskedLM model (or, with num_labels, the *ForSequenceClassification) with real
    shapes and no storage."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification

    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if num_labels:
                config = arch.config()
                config.num_labels = num_labels
                return AutoModelForSequenceClassification.from_config(config)
            return AutoModelForMaskedLM.from_config(arch.config())
    except ValueError as exc:
        raise UserError(f"{arch.name!r} ({arch.model_type}) is not a masked language model architecture.") from exc


def linear_shapes(model) -> dict[str, tuple[int, int]]:
    """Every nn.Linear by its full name: (in_features, out_features)."""
    import torch

    return {n: (m.in_features, m.out_features) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}


def target_presets(arch: Arch) -> dict[str, list[str] | str]:
    """Named choices for the LoRA target modules of this architecture."""
    default = LORA_TARGETS.get(arch.model_type) or LORA_TARGETS.get(arch.family, ["query", "value"])
    attention = _ATTENTION_ALL.get(arch.family, default)
    return {
        f"attention query + value ({', '.join(default)})": list(default),
        f"attention q, k, v + output ({', '.join(attention)})": list(attention),
        "all linear layers (all-linear)": ALL_LINEAR,
    }


def default_targets(arch: Arch) -> list[str]:
    return list(next(iter(target_presets(arch).values())))


def target_choices(model) -> list[str]:
    """Names a user can type as a target: for each Linear's role (its name with the layer
    number dropped), the shortest suffix that picks that role and nothing else, or, where
    only the layer number would (BERT's FFN output.dense), the suffix just after it."""
    import re

    roles: dict[str, set[str]] = {}
    for full in linear_shapes(model):
        roles.setdefault(re.sub(r"\.\d+\.", ".N.", full), set()).add(full)
    names = set()
    for members in roles.values():
        parts = next(iter(members)).split(".")
        for k in range(1, len(parts) + 1):
            key = ".".join(parts[-k:])
            if parts[-k].isdigit():  # only the layer number would single it out
                names.add(".".join(parts[-k + 1:]))
                break
            if {n for n in linear_shapes(model) if matches(n, key)} <= members:
                names.add(key)
                break
    return sorted(names)


def matches(name: str, key: str) -> bool:
    """peft's rule for a target key: the full name, or a suffix after a dot."""
    return name == key or name.endswith("." + key)
