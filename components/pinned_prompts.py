"""The Train tab's pinned-prompt timeline: how each pinned prompt's top guess moved, eval by eval.

Reads the run's `{"kind": "prompts"}` metrics rows (engine/training/pinned.py) and shows, per
prompt, the chain of distinct top-1 guesses ("the → temper → film") and a table of step x prompt
-> top-1 (probability). Plain Markdown: one widget, no extra table library.
"""

from __future__ import annotations

import gradio as gr

EMPTY = "No pinned prompts recorded yet (set them under *Pinned prompts*; they are scored at each evaluation)."
UNTRAINED = ("**Note:** this run started from a model whose MLM head is untrained: the first guesses are "
             "random, not a pretrained model's.")


def render() -> gr.Markdown:
    with gr.Accordion("Pinned prompts: top guess at each evaluation", open=False):
        return gr.Markdown(EMPTY, elem_id="train-pinned-prompts")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def timeline_markdown(rows: list[dict]) -> str:
    """The timeline from a run's metrics rows (rows of other kinds are ignored)."""
    steps = [r for r in rows if r.get("kind") == "prompts" and r.get("prompts")]
    if not steps:
        return EMPTY
    prompts = [p["prompt"] for p in steps[-1]["prompts"]]
    top1 = [{p["prompt"]: p["top"][0] for p in r["prompts"] if p.get("top")} for r in steps]
    lines = [UNTRAINED] if any(r.get("head_trained") is False for r in steps) else []
    for prompt in prompts:
        chain = []
        for guesses in top1:
            if prompt in guesses and (not chain or chain[-1] != guesses[prompt][0]):
                chain.append(guesses[prompt][0])
        lines.append(f"- *{_cell(prompt)}*: " + " → ".join(f"**{_cell(t)}**" for t in chain))
    lines += ["", "| step | " + " | ".join(_cell(p) for p in prompts) + " |", "|---" * (len(prompts) + 1) + "|"]
    for r, guesses in zip(steps, top1):
        cells = [f"{_cell(guesses[p][0])} ({guesses[p][1]:.2f})" if p in guesses else "" for p in prompts]
        lines.append(f"| {r['step']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
