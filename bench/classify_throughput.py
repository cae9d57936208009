"""Classifier training throughput: our step against the textbook's recipe, in one process.

The textbook's recipe (section 3.5): BertForSequenceClassification, every review padded to
max_length (padding='max_length'), a shuffled DataLoader, AdamW(lr 2e-5, weight decay 0.01)
over all parameters, loss.backward, clip_grad_norm_ 1.0, step, and the loss and predictions
read back every step. Ours (engine.training.classify.loop): length-grouped batches padded to
their own longest review, the last layer computed at [CLS] only, the CPU dropout and malloc
settings of the MLM loop, fused AdamW. Same model (the bundled MiniLM), same reviews (bundled
IMDb), same batch size and max length, fp32 on CPU.

    python bench/classify_throughput.py                 # batch 16, 128 tokens, 20 steps each
    python bench/classify_throughput.py --steps 40 --max-length 256

Order: the textbook alone first (glibc's default malloc). Then ours and the textbook again,
now with our malloc setting (engine/training/cpu_allocator.py is process-wide and cannot be
undone), the stricter reference, one step each in turn, so that a change in the machine's load
hits both alike (this CPU is shared). Prints samples/s and the ratios; never asserts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine.data.corpus import CorpusConfig, load_corpus  # noqa: E402
from engine.models import bundled_dir, load_tokenizer  # noqa: E402
from engine.training.classify import data  # noqa: E402
from engine.training.classify.config import ClassifyConfig  # noqa: E402
from engine.training.classify.loop import build_optimizer, device_for_training, speed_up, train_step  # noqa: E402
from engine.training.classify.model import build_classifier  # noqa: E402


def reviews(n: int, seed: int = 0) -> tuple[list[str], list[int]]:
    ds = load_corpus(CorpusConfig(source="imdb"))["train"].shuffle(seed=seed).select(range(n))
    return [data.clean_text(t) for t in ds["text"]], [int(y) for y in ds["label"]]


def timed(variants: dict, steps: int, warmup: int) -> dict:
    """Seconds per variant over `steps` optimizer steps after `warmup`, taking one step of each in turn."""
    for _ in range(warmup):
        for run in variants.values():
            next(run)
    seconds = dict.fromkeys(variants, 0.0)
    for _ in range(steps):
        for name, run in variants.items():
            began = time.perf_counter()
            next(run)
            seconds[name] += time.perf_counter() - began
    return seconds


def textbook(texts, labels, args):
    """The textbook's train_epoch, step for step."""
    from torch.utils.data import DataLoader, TensorDataset
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    tok = load_tokenizer("bundled")
    model = AutoModelForSequenceClassification.from_pretrained(str(bundled_dir()), num_labels=2).train()
    enc = tok(texts, max_length=args.max_length, padding="max_length", truncation=True, return_tensors="pt")
    loader = DataLoader(TensorDataset(enc["input_ids"], enc["attention_mask"], torch.tensor(labels)),
                        batch_size=args.batch_size, shuffle=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01)

    def steps():
        for input_ids, attention_mask, y in loader:
            optimizer.zero_grad()
            out = model(input_ids=input_ids, attention_mask=attention_mask, labels=y)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            optimizer.step()
            _ = out.loss.item(), torch.argmax(out.logits, dim=1).cpu().numpy()
            yield

    return steps()


def ours(texts, labels, args):
    cfg = ClassifyConfig(batch_size=args.batch_size, max_length=args.max_length)
    device = device_for_training()
    model, tok, _ = build_classifier("bundled", ["negative", "positive"], seed=0)
    model.to(device).train()
    speed_up(model, device)
    features = data.encode(texts, np.array(labels), tok, args.max_length)
    loader = data.train_loader(features, tok, args.batch_size, seed=0)
    optimizer, scheduler = build_optimizer(model, cfg.validated(), len(loader))

    def steps():
        for batch in loader:
            loss, predicted = train_step(model, batch, optimizer, scheduler, cfg.max_grad_norm)
            _ = float(loss), predicted.cpu().numpy()
            yield

    return steps()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20, help="measured optimizer steps per variant")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=128)
    args = p.parse_args()
    n = (args.steps + args.warmup) * args.batch_size
    texts, labels = reviews(n)
    tok = load_tokenizer("bundled")
    lengths = [min(len(ids), args.max_length) for ids in tok(texts, truncation=True, max_length=10**6)["input_ids"]]
    print(f"{n} bundled IMDb reviews, {torch.get_num_threads()} threads, batch {args.batch_size}, max length "
          f"{args.max_length}: {np.mean(lengths):.0f} tokens per review after truncation on average", flush=True)
    samples = args.steps * args.batch_size
    seconds = timed({"textbook": textbook(texts, labels, args)}, args.steps, args.warmup)
    mine = ours(texts, labels, args)  # installs our malloc setting: the textbook below gets it too
    seconds |= timed({"ours": mine, "textbook + our malloc": textbook(texts, labels, args)}, args.steps, args.warmup)
    rates = {name: samples / s for name, s in seconds.items()}
    for name, rate in rates.items():
        print(f"{name:>22}: {rate:7.2f} samples/s", flush=True)
    print(f"ratio ours / textbook: {rates['ours'] / rates['textbook']:.2f}x; "
          f"ours / (textbook + our malloc): {rates['ours'] / rates['textbook + our malloc']:.2f}x")


if __name__ == "__main__":
    main()
