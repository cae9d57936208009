"""Benchmark: the course's data preparation against engine.data.corpus.prepare.

    python bench/data_prep.py [--max-docs N] [--chunk-size 128]

In one process, on the bundled IMDb reviews (25,000: train + test) with the bundled
tokenizer, it times
  (a) the course's recipe: `Dataset.map(tokenize_function, batched=True)` keeping
      word_ids, then `Dataset.map(group_texts, batched=True)` with its
      `sum(examples[k], [])` concatenation;
  (b) the bare tokenizer on the same texts: the Rust backend's `encode_batch_fast`
      (no offsets: the fastest call it offers), `encode_batch` (with the offsets
      whole-word masking needs) and transformers' `tokenizer(texts)`;
  (c) ours, `engine.data.corpus.prepare`, with an empty cache (ids and special-token mask:
      what token-level masking needs);
  (c') ours with an empty cache and whole-word masking's offsets read too (their first read
      tokenizes once more, with offsets, and caches them);
  (d) ours again, reopened from that cache.
The corpus is read once before any timing, so every contender starts from texts in
memory. It prints the times, tokens/s and the goal ratios: course/ours >= 3,
ours/bare <= 1.2, first/cached >= 20. Timings are wall-clock on a shared machine:
run it when nothing else is busy, and read the ratios, not the absolute seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import models  # noqa: E402
from engine.data import corpus as data


def course_recipe(corpus, tokenizer, chunk_size: int):
    """The course chapter's preprocessing, step for step (our own code, same calls)."""

    def tokenize_function(examples):
        result = tokenizer(examples["text"])
        if tokenizer.is_fast:
            result["word_ids"] = [result.word_ids(i) for i in range(len(result["input_ids"]))]
        return result

    def group_texts(examples):
        concatenated = {k: sum(examples[k], []) for k in examples.keys()}
        total_length = len(concatenated[list(examples.keys())[0]])
        total_length = (total_length // chunk_size) * chunk_size
        result = {
            k: [t[i : i + chunk_size] for i in range(0, total_length, chunk_size)]
            for k, t in concatenated.items()
        }
        result["labels"] = result["input_ids"].copy()
        return result

    tokenized = corpus.map(tokenize_function, batched=True, remove_columns=corpus["train"].column_names)
    tokens = sum(sum(len(ids) for ids in tokenized[s]["input_ids"]) for s in tokenized)
    chunks = tokenized.map(group_texts, batched=True)
    return tokens, sum(len(chunks[s]) for s in chunks)


def with_offsets(cfg, tokenizer, chunk_size: int, max_len: int):
    """prepare() and the first read of every split's offset_mapping, as whole-word masking does."""
    prepared = data.prepare(cfg, tokenizer, chunk_size, max_len)
    return [prepared.chunks[s]["offset_mapping"] for s in prepared.chunks]


@dataclass
class Timing:
    wall: float  # seconds on the clock
    cpu: float  # CPU seconds of the whole process, all threads (Rust's too): robust to a busy machine


def best_of(repeat: int, fn, before=None):
    """The fastest of `repeat` runs (the least disturbed by other work on the machine)."""
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        if before:
            before()
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return result, Timing(min(walls), min(cpus))


def fastest(*timings: Timing) -> Timing:
    return Timing(min(t.wall for t in timings), min(t.cpu for t in timings))


def fresh_cache() -> None:
    os.environ["MLM_CACHE_DIR"] = tempfile.mkdtemp(prefix="mlm-bench-cache-")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-docs", type=int, default=0, help="use only this many reviews (0 = all 25,000)")
    p.add_argument("--chunk-size", type=int, default=128)
    p.add_argument("--repeat", type=int, default=2, help="keep the best of this many runs of each contender")
    args = p.parse_args()

    import datasets

    datasets.disable_progress_bars()
    datasets.disable_caching()  # the course's map must really run, not reopen an earlier run's Arrow file
    cfg = data.CorpusConfig(source="imdb", max_docs=args.max_docs)
    tokenizer = models.load_tokenizer(models.BUNDLED)
    corpus = data.load_corpus(cfg)  # read once; load_corpus keeps it for prepare() too
    texts = [t for s in ("train", "test") for t in corpus[s][:]["text"]]
    print(f"best of {args.repeat} runs each; corpus: {len(texts):,} reviews "
          f"(train {len(corpus['train']):,}, test {len(corpus['test']):,}), tokenizer: {models.BUNDLED_NAME}, "
          f"chunk size {args.chunk_size}, cpus {os.cpu_count()}")

    n, max_len = args.repeat, models.max_length_of(models.BUNDLED)
    (course_tokens, course_chunks), t_course = best_of(n, lambda: course_recipe(corpus, tokenizer, args.chunk_size))
    backend = data._untruncated(tokenizer)  # truncation/padding off, as both recipes need
    _, t_fast = best_of(n, lambda: backend.encode_batch_fast(texts))
    _, t_offsets = best_of(n, lambda: backend.encode_batch(texts))
    _, t_call = best_of(n, lambda: tokenizer(texts))
    first, t_first = best_of(n, lambda: data.prepare(cfg, tokenizer, args.chunk_size, max_len), before=fresh_cache)
    cached, t_cached = best_of(n, lambda: data.prepare(cfg, tokenizer, args.chunk_size, max_len))
    _, t_whole = best_of(n, lambda: with_offsets(cfg, tokenizer, args.chunk_size, max_len), before=fresh_cache)
    assert not first.cache_hit and cached.cache_hit, "the second prepare() should reopen the cache"
    ours = first.summary()
    tokens = ours["tokens"]
    bare = fastest(t_fast, t_offsets, t_call)
    bare_offsets = fastest(t_offsets, t_call)  # these also give the offsets whole-word masking needs

    def row(name: str, t: Timing, n_tokens: int = tokens) -> None:
        print(f"  {name:<58} {t.wall:8.3f} s {t.cpu:8.3f} s  {n_tokens / t.wall / 1e6:6.2f} M tokens/s")

    def ratio(name: str, a: Timing, b: Timing, goal: str) -> None:
        print(f"  {name:<24} {a.wall / b.wall:7.2f}x {a.cpu / b.cpu:9.2f}x    {goal}")

    print(f"times: {'':<52} {'wall':>8}   {'CPU':>8}")
    row("(a) course: map(tokenize_function) + map(group_texts)", t_course, course_tokens)
    row("(b) bare: backend.encode_batch_fast(texts) (no offsets)", t_fast)
    row("    bare: backend.encode_batch(texts) (with offsets)", t_offsets)
    row("    bare: tokenizer(texts) (transformers call)", t_call)
    row("(c) ours: engine.data.corpus.prepare, empty cache", t_first)
    row("(c') ours + whole-word masking's offsets, empty cache", t_whole)
    row("(d) ours: engine.data.corpus.prepare, reopened from cache", t_cached)
    print(f"tokens: course {course_tokens:,}, ours {tokens:,} ({'same' if course_tokens == tokens else 'DIFFERENT'}); "
          f"chunks: course {course_chunks:,} (remainder dropped per 1,000-review batch), ours {ours['chunks']:,}")
    print(f"ratios: {'':<17} {'wall':>7} {'CPU':>9}")
    ratio("course / ours", t_course, t_first, "goal >= 3")
    ratio("ours / bare (fastest)", t_first, bare, "goal <= 1.2 (bare = the fastest of the three calls)")
    ratio("ours / bare w/ offsets", t_first, bare_offsets, "bare = encode_batch or tokenizer(texts): with offsets")
    ratio("ours+offs / bare w/ offs", t_whole, bare_offsets, "whole-word masking's path, against a call with offsets")
    ratio("course / bare (fastest)", t_course, bare, "the most course / ours can be while ours tokenizes")
    ratio("first / cached reopen", t_first, t_cached, "goal >= 20")


if __name__ == "__main__":
    main()
