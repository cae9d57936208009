"""A sequence classifier from any masked-LM reference, LoRA for it, and the saved final/ folder.

Every start model goes the same way: load it as a masked LM (engine.models.load_mlm: bundled,
folder, Hub id, or an MLM run's LoRA adapter, which is merged into its base here), build the
architecture's *ForSequenceClassification from the same config under the run's seed, and copy
the encoder's weights in. The head (and BERT's pooler, which an MLM run does not save) thus starts
from the same seeded weights whatever the start model: a base-vs-adapted comparison differs
only in the encoder. trust_remote_code is never passed.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from engine.errors import UserError
from engine.models import ModelInfo, load_mlm
from engine.training import lora
from engine.training.classify.config import ClassifyConfig, head_modules

META_FILE = "classifier.json"  # final/: labels, method, start model (what inference needs)


def _merged_encoder(ref: str):
    """(masked-LM model with any LoRA adapter merged in, tokenizer, info)."""
    loaded = load_mlm(ref)
    model = loaded.model
    if hasattr(model, "merge_and_unload"):  # an MLM run's adapter: bake it into the base weights
        model = model.merge_and_unload()
    return model, loaded.tokenizer, loaded.info


def build_classifier(ref: str, labels: list[str], seed: int):
    """(classifier, tokenizer, info): the encoder of `ref` under a head drawn with `seed`."""
    from transformers import AutoModelForSequenceClassification

    mlm, tokenizer, info = _merged_encoder(ref)
    config = mlm.config
    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {name: i for i, name in enumerate(labels)}
    config.problem_type = "single_label_classification"
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AutoModelForSequenceClassification.from_config(config)
    except ValueError as exc:
        raise UserError(f"{info.name} ({info.model_type}) has no sequence-classification form: {exc}") from None
    missing, unexpected = model.base_model.load_state_dict(mlm.base_model.state_dict(), strict=False)
    head = head_modules(info.model_type)
    stray = [k for k in missing if k.split(".")[0] not in head] + list(unexpected)
    if stray:  # the encoder's weights did not line up: training would start from random weights
        raise UserError(f"Could not move the encoder of {ref!r} into a classifier: {', '.join(stray[:5])}.")
    return model, tokenizer, info


def wrap_lora(model: nn.Module, cfg: ClassifyConfig, info: ModelInfo):
    """peft SEQ_CLS: adapters on the targets, the classifier head (and pooler) trained in full."""
    from peft import LoraConfig, TaskType, get_peft_model

    targets = lora.target_modules(cfg, info.model_type)  # reads cfg.lora_targets only
    lora.check_targets(model, targets)
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS, r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=targets, bias="none", modules_to_save=head_modules(info.model_type),
    )
    peft_model = get_peft_model(model, config)
    for adapter in peft_model.peft_config.values():
        adapter.base_model_name_or_path = lora.base_reference(cfg.model)
    return peft_model


def save_final(folder, model: nn.Module, tokenizer, cfg: ClassifyConfig, labels: list[str]) -> Path:
    """final/ (through RunFolder.write_final): the classifier (full) or the adapter with its head
    (LoRA), the tokenizer, and classifier.json."""
    meta = {"kind": "classify", "labels": labels, "method": cfg.method, "start_model": lora.base_reference(cfg.model),
            "max_length": cfg.max_length, "seed": cfg.seed}

    def write(tmp: Path) -> None:
        if hasattr(model, "peft_config"):  # the embeddings never train here: no need to look the base up
            model.save_pretrained(tmp, save_embedding_layers=False)
        else:
            model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1))

    return folder.write_final(write)


def load_trained(src: str):
    """(classifier in eval mode, tokenizer, labels) from a final/ folder or a classifier checkpoint."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = Path(src)
    meta_path = folder / META_FILE
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("method") == "lora":
            from peft import PeftModel

            base, _, _ = build_classifier(meta["start_model"], meta["labels"], int(meta.get("seed", 0)))
            model = PeftModel.from_pretrained(base, str(folder)).merge_and_unload()
        else:
            model = AutoModelForSequenceClassification.from_pretrained(str(folder))
        return model.eval(), AutoTokenizer.from_pretrained(str(folder)), list(meta["labels"])
    config = _config_json(src)
    if not any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or []):
        # no path in the message: src is a folder on the server; the caller names the model as it was given
        raise UserError("It is not a text classifier (no *ForSequenceClassification in its config): train one "
                        "first (a classifier run, or a saved classifier).")
    model = AutoModelForSequenceClassification.from_pretrained(src)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    return model.eval(), AutoTokenizer.from_pretrained(src), labels


def _config_json(src: str) -> dict:
    path = Path(src) / "config.json"
    if path.exists():
        return json.loads(path.read_text())
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(src).to_dict()
    except OSError as exc:
        raise UserError(f"Could not read the model config of {src!r}: {exc}") from None
