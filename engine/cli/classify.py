"""`python -m engine classify`: one classifier run from a terminal, into the same run folder as the app.

    python -m engine classify                                   # bundled MiniLM on bundled IMDb, full
    python -m engine classify --method lora --seed 3
    python -m engine classify --model runs/<run_id>/final --dataset reviews.csv --corpus-label-column stars
    python -m engine classify --config cfg.json --learning-rate 1e-4   # flags override the file

Every ClassifyConfig field is a flag (--train-size, --max-length, --lora-r, ...) and every
CorpusConfig field one with a corpus- prefix (--corpus-id, --corpus-label-column, ...): the
flags are derived from the dataclasses, so a new setting needs no change here.
Ctrl-C stops after the current step with a last evaluation (no final/ model).
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from engine.data.corpus import CorpusConfig
from engine.training.classify.config import FIELD_HELP, ClassifyConfig

TYPES = {"int": int, "float": float, "str": str, "list[str]": str}  # list[str]: comma-separated


def corpus_flag(name: str) -> str:
    return name if name.startswith("corpus_") else "corpus_" + name


def _add_fields(p: argparse.ArgumentParser, cls, dest) -> None:
    for f in dataclasses.fields(cls):
        if f.type not in TYPES:
            continue  # nested configs get their own flags
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        helptext = FIELD_HELP.get(f.name, "") if cls is ClassifyConfig else f"corpus setting {f.name}"
        p.add_argument("--" + dest(f.name).replace("_", "-"), dest=dest(f.name), type=TYPES[f.type], default=None,
                       help=f"{helptext} (default: {default!r})")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine classify", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="a ClassifyConfig JSON file (flags override its values)")
    p.add_argument("--dataset", help="imdb, rotten_tomatoes, a Hub id, or a CSV/JSON/text file (stored first)")
    _add_fields(p, ClassifyConfig, lambda name: name)
    _add_fields(p, CorpusConfig, corpus_flag)
    return p


def build_config(args: argparse.Namespace) -> ClassifyConfig:
    from engine.cli.train import _read_config

    raw = _read_config(args.config) if args.config else {}
    corpus = dict(raw.pop("corpus", None) or {})
    if args.dataset:
        from engine.cli.prepare import corpus_config

        chosen = corpus_config(args.dataset, args.corpus_text_column or "", args.corpus_seed or 42,
                               args.corpus_max_docs or 0, args.corpus_label_column or "label")
        corpus.update(dataclasses.asdict(chosen))
    for f in dataclasses.fields(CorpusConfig):
        if (value := getattr(args, corpus_flag(f.name))) is not None:
            corpus[f.name] = value
    for f in dataclasses.fields(ClassifyConfig):
        if f.type in TYPES and (value := getattr(args, f.name)) is not None:
            raw[f.name] = value
    raw["corpus"] = corpus
    return ClassifyConfig.from_dict(raw)


def run(cfg: ClassifyConfig, run_id: str, run_dir) -> dict:
    from engine.cli.train import _Console, _stop_on_ctrl_c
    from engine.run_folder import RunFolder
    from engine.runs.record import run_and_record
    from engine.training.classify.loop import train_classifier

    folder = RunFolder(run_dir)
    console = _Console(folder, True)
    print(f"run {run_id}\nfolder {run_dir}", flush=True)
    should_stop = _stop_on_ctrl_c()
    try:  # the same status path as `python -m engine train` and the worker
        summary = run_and_record(
            folder, lambda: train_classifier(cfg, run_dir, should_stop=should_stop, progress=console.progress,
                                             log=console.log),
            resume_hint="start it again (classifier runs keep no checkpoints)", tail=lambda: list(console.tail))
    finally:
        console.bar.close()
    print(json.dumps(summary, indent=1), flush=True)
    return summary


def main(argv: list[str]) -> int:
    from engine.cli.train import new_run
    from engine.training.classify.infer import preflight

    cfg = build_config(parser().parse_args(argv))
    preflight(cfg)  # labels, sizes and max length fail here, before a run folder exists
    run_id, run_dir = new_run(cfg)  # config.json (with "kind": "classify") and a queued status.json
    run(cfg, run_id, run_dir)
    return 0



