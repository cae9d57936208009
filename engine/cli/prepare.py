"""`python -m engine prepare`: store (if a file) then tokenize and chunk a corpus, print one JSON line.

A file is kept as a stored corpus (engine.data.store) and its `corpus_id` printed, so that
`python -m engine train --corpus-id <id>` and the app's corpus pickers find it again.
"""

import argparse
import json

from engine import models
from engine.data import corpus as data


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m engine prepare", description=__doc__)
    p.add_argument("--dataset", default="imdb", help="imdb, rotten_tomatoes, a Hub id, or a file path")
    p.add_argument("--corpus-id", default="", help="a stored corpus id (from the app or an earlier prepare)")
    p.add_argument("--model", default=models.BUNDLED, help="'bundled', a folder, or a Hub model id")
    p.add_argument("--chunk-size", type=int, default=128)
    p.add_argument("--text-column", default="", help="the text column of a file ('' = the best guess)")
    p.add_argument("--label-column", default="label", help="the label column of a file, if it has one")
    p.add_argument("--name", default="", help="display name of a stored file (default: the file name)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--max-docs", type=int, default=0, help="keep only this many documents (0 = all)")
    args = p.parse_args(argv)
    if args.corpus_id:
        cfg = stored_config(args.corpus_id, args.seed, args.max_docs)
    else:
        cfg = corpus_config(args.dataset, args.text_column, args.seed, args.max_docs, args.label_column, args.name)
    tok = models.load_tokenizer(args.model)
    prepared = data.prepare(cfg, tok, args.chunk_size, models.max_length_of(args.model))
    print(json.dumps({"corpus_id": cfg.corpus_id or cfg.source, **prepared.summary()}))
    return 0


def stored_config(corpus_id: str, seed: int = 42, max_docs: int = 0) -> data.CorpusConfig:
    from engine.data import store

    meta = store.get(corpus_id)
    return data.CorpusConfig(source="stored", corpus_id=meta.corpus_id, label_column=meta.label_column or "label",
                             seed=seed, max_docs=max_docs)


def corpus_config(dataset: str, text_column: str = "", seed: int = 42, max_docs: int = 0,
                  label_column: str = "label", name: str = "") -> data.CorpusConfig:
    """Map a --dataset value onto a CorpusConfig: bundled name, a file (stored first), else a Hub id."""
    from pathlib import Path

    from engine.data import store

    if dataset in data.BUNDLED_SOURCES:
        return data.CorpusConfig(source=dataset, seed=seed, max_docs=max_docs)
    if Path(dataset).is_file():
        meta = store.store_upload(dataset, text_column, label_column, name)
        return stored_config(meta.corpus_id, seed, max_docs)
    return data.CorpusConfig(source="hub", hub_id=dataset, text_column=text_column or "text", seed=seed,
                             max_docs=max_docs)
