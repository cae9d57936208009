"""Costs tab, "What fits?": the largest batch size and sequence length per GPU preset, and
every precision side by side, for the estimate on screen (engine/costs/fits.py does the
arithmetic). Its own module so the Costs form can change without touching it: it reads
only the estimate's JSON, which carries the settings it was made with."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from components.common import table, user_errors
from engine.costs import MAX_BATCH, settings_from_estimate, what_fits
from engine.errors import UserError


def _batch(n: int) -> str:
    return "none" if n == 0 else f"≥ {n:,}" if n >= MAX_BATCH else f"{n:,}"


def gpu_table(r: dict) -> pd.DataFrame:
    seq, batch = r["seq_len"], r["batch_size"]
    return pd.DataFrame([{
        "GPU": row["gpu"], "memory (GiB)": f"{row['memory_gib']:g}",
        f"full: largest batch at {seq} tokens": _batch(row["full_max_batch"]),
        f"LoRA: largest batch at {seq} tokens": _batch(row["lora_max_batch"]),
        f"full: longest sequence at batch {batch}": row["full_max_seq"] or "none",
        f"LoRA: longest sequence at batch {batch}": row["lora_max_seq"] or "none",
    } for row in r["by_gpu"]])


def precision_table(r: dict) -> pd.DataFrame:
    def verdict(row, method):
        return f"{row[f'{method}_total_gib']:.2f} GiB, " + ("fits" if row[f"{method}_fits"] else "does NOT fit")

    return pd.DataFrame([{
        "precision": row["label"],
        f"full at batch {r['batch_size']}": verdict(row, "full"), "full: largest batch": _batch(row["full_max_batch"]),
        f"LoRA at batch {r['batch_size']}": verdict(row, "lora"), "LoRA: largest batch": _batch(row["lora_max_batch"]),
    } for row in r["by_precision"]])


@user_errors
def find(estimate: dict | None):
    if not estimate or "settings" not in estimate:
        raise UserError("Press Estimate first: this finds what fits for the estimate on screen.")
    r = what_fits(settings_from_estimate(estimate))
    note = (f"**{r['model']}**, {r['precision']}, optimizer and LoRA settings as estimated. A setting fits when the "
            f"estimate's total (margin and framework overhead included) is within the GPU's memory. "
            f"Precisions on **{r['gpu']}** ({r['gpu_memory_gib']:g} GiB) at {r['seq_len']} tokens:")
    return gpu_table(r), note, precision_table(r)


def render(estimate: gr.JSON) -> None:
    """The section; `estimate` is the Costs tab's JSON output (what /estimate returns)."""
    with gr.Accordion("What fits? Largest batch and sequence per GPU, and every precision", open=False):
        button = gr.Button("Find what fits for this estimate", elem_id="costs-fits-find")
        by_gpu = table("Per GPU preset", ["GPU", "memory (GiB)", "full: largest batch", "LoRA: largest batch",
                                          "full: longest sequence", "LoRA: longest sequence"],
                       elem_id="costs-fits-gpus")
        note = gr.Markdown()
        by_precision = table("Every precision side by side", ["precision", "full", "full: largest batch", "LoRA",
                                                              "LoRA: largest batch"], elem_id="costs-fits-precisions")
    button.click(find, estimate, [by_gpu, note, by_precision], api_visibility="private")
