"""Exact parameter counts for full fine-tuning and LoRA, through peft on a meta model.

Besides the totals, the report says which modules train (their weights need gradients
and optimizer state) and which carry a LoRA adapter of which rank: the activation
trace (costs_trace.py) replays the forward pass with exactly these facts.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

from engine.costs.arch import ALL_LINEAR, Arch, linear_shapes, matches, meta_model, target_choices
from engine.errors import UserError

_WRAPPERS = re.compile(r"\.(base_layer|modules_to_save\.default|original_module)(?=\.|$)")


@dataclass(frozen=True)
class LoraSpec:
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    targets: tuple[str, ...] | str = ()  # () = the architecture's default; "all-linear" = every Linear
    modules_to_save: tuple[str, ...] = ()


@dataclass
class ParamReport:
    method: str
    total: int  # every parameter of the model as trained (base + adapters + saved copies)
    trainable: int
    trainable_numels: list[int]  # one entry per trainable tensor (optimizer state is per tensor)
    trainable_by_segment: dict[str, int]  # embeddings / layer.N / head -> trainable numel
    lora_modules: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # name -> (in, out, r)
    trainable_modules: frozenset[str] = frozenset()
    targeted_weights: int = 0  # d*k summed over the LoRA-wrapped base matrices
    adapter_params: int = 0  # what a LoRA checkpoint stores: adapters + modules_to_save
    tied_head: bool = True

    @property
    def share(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def trains(self, module: str) -> bool:
        """Whether the module's own weight gets a gradient."""
        return self.method == "full" or module in self.trainable_modules

    def lora_rank(self, module: str) -> int:
        return self.lora_modules.get(module, (0, 0, 0))[2]


def normalise(name: str) -> str:
    """peft's wrapped names back to the plain model's ('base_model.model.x.base_layer' -> 'x')."""
    return _WRAPPERS.sub("", name.removeprefix("base_model.model."))


def segment_of(param_name: str) -> str:
    found = re.search(r"\.layers?\.(\d+)\.", param_name)  # BERT's encoder.layer.N, ModernBERT's layers.N
    if found:
        return f"layer.{found.group(1)}"
    return "embeddings" if ".embeddings." in param_name else "head"


def count_params(arch: Arch, method: str, lora: LoraSpec | None = None, num_labels: int = 0) -> ParamReport:
    """num_labels > 0: a sequence classifier, whose LoRA run trains its head in full (peft SEQ_CLS,
    the head as the classify runs save it: engine.architectures.classifier_head)."""
    model = meta_model(arch, num_labels)
    tied = _is_tied(model)
    if method == "full":
        return _report(model, "full", tied)
    lora = lora or LoraSpec()
    shapes = linear_shapes(model)
    targets = check_lora(arch, model, shapes, lora)
    from peft import LoraConfig, TaskType, get_peft_model

    saved = list(lora.modules_to_save)
    task = {}
    if num_labels:
        from engine.architectures import classifier_head

        saved = saved or classifier_head(arch.model_type)
        task = {"task_type": TaskType.SEQ_CLS}  # peft then also keeps "classifier"/"score" trainable
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=targets, modules_to_save=saved or None, **task)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = get_peft_model(model, config)
    return _report(peft_model, "lora", tied)


def _is_tied(model) -> bool:
    out, inp = model.get_output_embeddings(), model.get_input_embeddings()
    return out is not None and out.weight is inp.weight


def _report(model, method: str, tied: bool) -> ParamReport:
    from peft.tuners.lora import LoraLayer

    total = trainable = adapter = 0
    numels: list[int] = []
    by_segment: dict[str, int] = {}
    owners: set[str] = set()
    head_word = _tied_word_embedding_name(model) if tied else None
    for name, p in model.named_parameters():
        total += p.numel()
        if not p.requires_grad:
            continue
        trainable += p.numel()
        numels.append(p.numel())
        plain = normalise(name)
        # A tied word embedding's gradient arrives with the head's backward, before any layer's.
        segment = "head" if plain == head_word else segment_of(plain)
        by_segment[segment] = by_segment.get(segment, 0) + p.numel()
        if ".lora_" in plain:
            adapter += p.numel()
        else:
            owners.add(plain.rsplit(".", 1)[0])
            adapter += p.numel() if method == "lora" else 0
    lora_modules, targeted = {}, 0
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer):
            base = module.get_base_layer()
            r = int(next(iter(module.r.values())))
            lora_modules[normalise(name)] = (base.in_features, base.out_features, r)
            targeted += base.in_features * base.out_features
    return ParamReport(method, total, trainable, numels, by_segment, lora_modules, frozenset(owners),
                       targeted, adapter, tied)


def _tied_word_embedding_name(model) -> str | None:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    weight = inner.get_input_embeddings().weight
    for name, p in inner.named_parameters():
        if p is weight:
            return normalise(name)
    return None


def check_lora(arch: Arch, model, shapes: dict[str, tuple[int, int]], lora: LoraSpec) -> list[str] | str:
    """Targets as peft wants them, after checking rank and names; UserError says what to change."""
    from engine.costs.arch import default_targets

    if lora.r < 1:
        raise UserError(f"LoRA rank r must be at least 1, got {lora.r}.")
    targets = lora.targets or default_targets(arch)
    if targets == ALL_LINEAR:
        out = model.get_output_embeddings()
        picked = {n: s for n, s in shapes.items() if model.get_submodule(n) is not out}
    else:
        targets = [t.strip() for t in targets if t.strip()]
        missing = [t for t in targets if not any(matches(n, t) for n in shapes)]
        if missing:
            raise UserError(
                f"{arch.name} has no linear layer named {', '.join(map(repr, missing))}. "
                f"Choose among: {', '.join(target_choices(model))} (or 'all-linear')."
            )
        picked = {n: s for n, s in shapes.items() if any(matches(n, t) for t in targets)}
    for name, (d_in, d_out) in picked.items():
        if lora.r > min(d_in, d_out):
            raise UserError(
                f"LoRA rank r={lora.r} is above the width of {name.split('.')[-1]} ({d_in} x {d_out}): "
                f"use r of at most {min(d_in, d_out)} (LoRA ranks are usually 4 to 64)."
            )
    names = [n for n, _ in model.named_modules()]
    for keep in lora.modules_to_save:
        if not any(matches(n, keep) for n in names):
            raise UserError(f"{arch.name} has no module named {keep!r} to train in full (modules to save).")
    if not 0 <= lora.dropout < 1:
        raise UserError(f"LoRA dropout must be in [0, 1), got {lora.dropout}.")
    if lora.alpha <= 0:
        raise UserError(f"LoRA alpha must be above 0, got {lora.alpha}.")
    return targets
