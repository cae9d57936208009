"""Run folders built by hand for the Compare tests: real files in the layout of
docs/interfaces.md (status.json, config.json, summary.json, eval_set.npz, final/).

The models are tiny (hidden 32, 2 layers), so training one for a few steps takes a second.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from tests.conftest import write_run as write_run_files

GREAT_MOVIE = ["this is a great movie.", "what a great movie.", "a great movie to watch."]


def write_run(root: Path, run_id: str, state: str = "completed", final_from: str | None = None,
              eval_set: dict | None = None, model: str = "bundled", method: str = "full",
              summary: dict | None = None) -> Path:
    folder = write_run_files(
        root, run_id, {"model": model, "method": method, "run_id": run_id},
        {"state": state, "message": "boom" if state == "failed" else "", "step": 3},
        summary or {"eval_perplexity_before": 30000.0, "eval_perplexity_after": 900.0})
    if final_from:
        shutil.copytree(final_from, folder / "final", dirs_exist_ok=True)
    if eval_set is not None:
        np.savez(folder / "eval_set.npz", **eval_set)
    return folder


def build_eval_set(tokenizer, texts: list[str], seed: int = 0, chunk: int = 16) -> dict:
    """Masked eval chunks made with the project's collator factory (engine.masking)."""
    from engine.masking import make_collator

    enc = tokenizer(texts, truncation=True, max_length=chunk, padding="max_length", return_special_tokens_mask=True)
    rows = [{"input_ids": i, "special_tokens_mask": s} for i, s in zip(enc["input_ids"], enc["special_tokens_mask"])]
    batch = make_collator(tokenizer, mlm_probability=0.3, seed=seed)(rows)
    return {"input_ids": batch["input_ids"].numpy().astype(np.int64),
            "attention_mask": np.asarray(enc["attention_mask"], dtype=np.int64),
            "labels": batch["labels"].numpy().astype(np.int64)}


def train_tiny(model_dir: str, out_dir: Path, texts=GREAT_MOVIE, word: str = "movie", steps: int = 40) -> str:
    """The tiny model trained to put `word` in place of [MASK] in `texts`; saved to `out_dir`."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForMaskedLM.from_pretrained(model_dir)
    masked = [t.replace(word, tok.mask_token) for t in texts]
    enc = tok(masked, padding=True, return_tensors="pt")
    labels = torch.full_like(enc["input_ids"], -100)
    labels[enc["input_ids"] == tok.mask_token_id] = tok.convert_tokens_to_ids(word)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(**enc, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return str(out_dir)


def make_lora(base_dir: str, out_dir: Path, seed: int) -> str:
    """A LoRA adapter on the tiny base with random (non-zero) matrices, as a finished run saves it."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    torch.manual_seed(seed)
    base = AutoModelForMaskedLM.from_pretrained(base_dir)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], init_lora_weights=False)
    peft_model = get_peft_model(base, cfg)
    peft_model.peft_config["default"].base_model_name_or_path = str(base_dir)
    peft_model.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(out_dir)
    return str(out_dir)


TRAINED = "20260101-000000-0000000000000aaa"
LORA_A = "20260101-000001-0000000000000bbb"
LORA_B = "20260101-000002-0000000000000ccc"
FAILED = "20260101-000003-0000000000000ddd"
RUNNING = "20260101-000004-0000000000000eee"


def build_runs(root: Path, tiny_dir: str, tokenizer, work: Path) -> dict[str, str]:
    """A trained full run, two LoRA runs on the tiny base, a failed and a running run."""
    eval_set = build_eval_set(tokenizer, GREAT_MOVIE * 4 + ["the plot of the movie was thin."] * 4)
    trained = train_tiny(tiny_dir, Path(work) / "trained")
    write_run(root, TRAINED, final_from=trained, eval_set=eval_set, model=tiny_dir)
    for run_id, seed in ((LORA_A, 1), (LORA_B, 2)):
        adapter = make_lora(tiny_dir, Path(work) / f"lora-{seed}", seed)
        write_run(root, run_id, final_from=adapter, eval_set=eval_set, model=tiny_dir, method="lora")
    write_run(root, FAILED, state="failed")
    write_run(root, RUNNING, state="running")
    return {"trained": TRAINED, "lora_a": LORA_A, "lora_b": LORA_B, "failed": FAILED, "running": RUNNING}
