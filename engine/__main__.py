"""`python -m engine <command> ...`: the engine from a terminal.

Commands: prepare (tokenize and chunk a corpus), train (one run, same run folder as
the app), classify (a classifier run, same run folder), estimate (LoRA-vs-full cost
estimate). Each lives next to the code it
drives; this file only decides offline mode first and dispatches.
"""

import sys

from engine.offline import ensure_mode

COMMANDS = {
    "prepare": "engine.cli.prepare",
    "train": "engine.cli.train",
    "classify": "engine.cli.classify",
    "estimate": "engine.cli.estimate",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m engine {{{','.join(COMMANDS)}}} [options]  (add --help to a command)")
        return 2
    ensure_mode()  # must precede any transformers/datasets import
    import importlib

    from engine.errors import UserError

    module = importlib.import_module(COMMANDS[argv[0]])
    try:
        return module.main(argv[1:])
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
