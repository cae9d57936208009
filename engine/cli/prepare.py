"""`python -m engine prepare`: tokenize and chunk a corpus, print one JSON line."""

import argparse
import json

from engine import models
from engine.data import corpus as data


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m engine prepare", description=__doc__)
    p.add_argument("--dataset", default="imdb", help="imdb, rotten_tomatoes, a Hub id, or a file path")
    p.add_argument("--model", default=models.BUNDLED, help="'bundled', a folder, or a Hub model id")
    p.add_argument("--chunk-size", type=int, default=128)
    p.add_argument("--text-column", default="text")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--max-docs", type=int, default=0, help="keep only this many documents (0 = all)")
    args = p.parse_args(argv)
    cfg = corpus_config(args.dataset, args.text_column, args.seed, args.max_docs)
    tok = models.load_tokenizer(args.model)
    prepared = data.prepare(cfg, tok, args.chunk_size, models.max_length_of(args.model))
    print(json.dumps(prepared.summary()))
    return 0


def corpus_config(dataset: str, text_column: str = "text", seed: int = 42, max_docs: int = 0) -> data.CorpusConfig:
    """Map a --dataset value onto a CorpusConfig (bundled name, existing file, else Hub id)."""
    from pathlib import Path

    if dataset in data.BUNDLED_SOURCES:
        return data.CorpusConfig(source=dataset, seed=seed, max_docs=max_docs)
    if Path(dataset).is_file():
        return data.CorpusConfig(
            source="upload", upload_path=dataset, text_column=text_column, seed=seed, max_docs=max_docs
        )
    return data.CorpusConfig(source="hub", hub_id=dataset, text_column=text_column, seed=seed, max_docs=max_docs)
