"""Costs tab: LoRA versus full fine-tuning, priced before you train and checked after.

Parameters (exact, through peft on a meta-device model), peak memory by part, whether it
fits the GPU, checkpoint size, FLOPs, time and money per epoch, the textbook's
r(d+k)/(d·k) with the numbers filled in, and a finished run's measurements next to the
prediction. engine.costs.calculator does all the arithmetic; this module only builds widgets.

Public API (gradio_client), `/estimate`:
    client.predict(model, lora_r, lora_alpha, lora_dropout, targets, modules_to_save,
                   batch_size, seq_len, precision, optimizer, grad_checkpointing, head,
                   mlm_probability, gpu, gpu_memory_gib, tflops_16bit, tflops_fp32,
                   price_per_hour, corpus_tokens, epochs, utilisation, calibration_run, task,
                   api_name="/estimate")
  Inputs: model ("bert-base-uncased", "distilbert-base-uncased", "bert-large-uncased",
    "roberta-base", "roberta-large", "bundled", a local folder, or a Hub id when online:
    only its config is read); lora_r (rank, 1 .. the layer width); lora_alpha;
    lora_dropout (0 <= p < 1); targets ("query,value", "all-linear", or "" for the
    model's default); modules_to_save ("" or comma-separated module names trained in
    full); batch_size (>= 1); seq_len (8 .. the model's maximum); precision ("fp32" |
    "fp16" | "bf16" (mixed) | "bf16-pure"); optimizer ("adamw" | "adamw8bit" | "sgd");
    grad_checkpointing (bool); head ("masked": MLM head on masked positions only, as
    this app trains | "all": every position); mlm_probability (0 < p < 1); gpu (a
    preset name, e.g. "NVIDIA A100 (40 GB)"); gpu_memory_gib, tflops_16bit,
    tflops_fp32, price_per_hour (text; "" keeps the preset's figure); corpus_tokens
    (tokens per epoch, text, commas allowed; "0" = no time or money); epochs;
    utilisation ("" = default 0.35 or the calibration run's); calibration_run ("" or a
    finished run id); task ("mlm" (default) | "classify": a 2-label sequence classifier,
    its pooler and classifier trained in full next to LoRA).
  Output (JSON): {"model", "settings", "gpu", "selected", "full": side, "lora": side,
    "reduction": {"per_shape": [...], "lora_params", "targeted_weights",
    "percent_of_targeted", "text"}, "calibration": null | {...}, "notes": [str]}
    where side = {"params": {"total", "trainable", "trainable_percent", "adapter"},
    "memory": {"parts": {weights, gradients, optimizer, activations, logits, margin, overhead}
    (bytes at the peak moment), "peak_allocated", "total", "fits", "gpu_memory",
    "moment", ...}, "checkpoint": {"model_or_adapter", "resumable_checkpoint"},
    "flops": {"per_token", "per_token_forward", "per_token_backward", "six_n_per_token",
    "attention_per_token", "head_per_token", "head_share", "per_epoch", ...},
    "time": null | {"tokens_per_s", "seconds_per_epoch", "cost_per_epoch",
    "total_seconds", "total_cost", "utilisation", ...}}. Bad input (rank 0, unknown
    target module, batch 0, sequence above the model's maximum, a price of text, an
    unknown model offline) raises an error whose message says what to change.

The parameters are the fields of `EstimateRequest`, in its order: the endpoint takes its
inputs by name from that form, so a new setting is one field there plus one widget.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from components import corpus_picker, cost_fits
from components.common import table, user_errors
from components.cost_plots import memory_bars
from components.forms import Form
from engine.costs import (
    ALL_LINEAR,
    ARCH_CHOICES,
    DEFAULT_GPU,
    DEFAULT_UTILISATION,
    OPTIMIZER_LABELS,
    PART_LABELS,
    PARTS,
    PRECISION_LABELS,
    PRESETS,
    CostSettings,
    bundled_corpus_tokens,
    estimate,
    finished_runs,
    load_arch,
    preset,
    target_presets,
)
from engine.errors import UserError
from engine.numbers import GIB, MIB, number, whole

DEFAULT_MODEL = "bert-base-uncased"
CUSTOM = "custom (type below)"
TASK_CHOICES = [("Domain adaptation (masked LM)", "mlm"), ("Sequence classification (2 labels)", "classify")]


# ---------------------------------------------------------------- handlers


@dataclass
class EstimateRequest:
    """The Costs form, one field per widget, named and ordered as the public /estimate endpoint's
    parameters (README, this module's docstring). Values are as the widgets give them: a number
    box may be empty, the GPU figures are text."""

    model: Any
    lora_r: Any
    lora_alpha: Any
    lora_dropout: Any
    targets: Any
    modules_to_save: Any
    batch_size: Any
    seq_len: Any
    precision: Any
    optimizer: Any
    grad_checkpointing: Any
    head: Any
    mlm_probability: Any
    gpu: Any
    gpu_memory_gib: Any
    tflops_16bit: Any
    tflops_fp32: Any
    price_per_hour: Any
    corpus_tokens: Any
    epochs: Any
    utilisation: Any
    calibration_run: Any
    task: Any = "mlm"  # last, so that callers of /estimate by position keep working

    def settings(self) -> CostSettings:
        """The engine's settings (CostSettings validates them; an empty number box is refused here)."""
        return CostSettings(
            model=_text(self.model) or DEFAULT_MODEL, lora_r=_given(self.lora_r, "LoRA rank r"),
            lora_alpha=_given(self.lora_alpha, "LoRA alpha"), lora_dropout=_given(self.lora_dropout, "LoRA dropout"),
            lora_targets=self.targets or "", modules_to_save=self.modules_to_save or "",
            batch_size=_given(self.batch_size, "Batch size"), seq_len=_given(self.seq_len, "Sequence length"),
            precision=self.precision, optimizer=self.optimizer, grad_checkpointing=self.grad_checkpointing or False,
            head=self.head, mlm_probability=_given(self.mlm_probability, "Masking probability"),
            gpu=self.gpu or DEFAULT_GPU, gpu_memory_gib=self.gpu_memory_gib, gpu_tflops_16bit=self.tflops_16bit,
            gpu_tflops_fp32=self.tflops_fp32, gpu_price_per_hour=self.price_per_hour,
            corpus_tokens=self.corpus_tokens or 0, epochs=_given(self.epochs, "Epochs"),
            utilisation=self.utilisation or None, calibration_run=self.calibration_run or "",
            task=self.task or "mlm",
        )


@user_errors
def run_estimate(**values) -> dict:
    # /estimate: the form's values by name (the event passes them as keyword arguments). No
    # docstring: gradio would publish it as the endpoint's description, which callers already know.
    return estimate(EstimateRequest(**values).settings())


def _text(value):
    """A text box's value stripped; anything else as given, for CostSettings to refuse by type."""
    return value.strip() if isinstance(value, str) else value


def _given(value, label: str):
    return number(value, label)  # "Batch size must be a number; the field is empty." (engine.numbers)


@dataclass
class EstimateView:
    """What the tab shows of an estimate, one field per widget."""

    summary: str
    plot: Any
    table: pd.DataFrame
    formula: str
    calibration: str


def show(result: dict) -> EstimateView:
    """The estimate's widgets: summary, memory bars, side-by-side table, formula, calibration."""
    return EstimateView(summary=summary_md(result), plot=memory_bars(result), table=side_by_side(result),
                        formula=formula_md(result), calibration=calibration_md(result.get("calibration")))


def summary_md(e: dict) -> str:
    full, lora = e["full"], e["lora"]
    gpu = e["gpu"]["name"]

    def fits(side):
        verdict = "fits" if side["memory"]["fits"] else "**does not fit**"
        return f"{verdict} {gpu} ({side['memory']['total'] / GIB:.2f} of {e['gpu']['memory_gib']:g} GiB)"

    lines = [
        f"**{e['model']['name']}**: full fine-tuning {fits(full)}; LoRA {fits(lora)}.",
        f"LoRA trains {lora['params']['trainable']:,} parameters ({lora['params']['trainable_percent']:.2f}% "
        f"of {lora['params']['total']:,}) and needs {lora['flops']['per_token'] / full['flops']['per_token']:.0%} "
        f"of full fine-tuning's FLOPs per token; its adapter is {lora['checkpoint']['model_or_adapter'] / MIB:.1f} MiB "
        f"against {full['checkpoint']['model_or_adapter'] / MIB:.0f} MiB for the full model.",
    ]
    if full["time"]:
        t_full, t_lora = full["time"], lora["time"]
        lines.append(
            f"Per epoch: full {duration(t_full['seconds_per_epoch'])} ({money(t_full['cost_per_epoch'])}), "
            f"LoRA {duration(t_lora['seconds_per_epoch'])} ({money(t_lora['cost_per_epoch'])}) at "
            f"{t_full['utilisation']:.0%} utilisation ({t_full['utilisation_source']})."
        )
    else:
        lines.append("Type the corpus tokens per epoch (or count the bundled corpus) to see time and money.")
    if e["settings"].get("task") == "classify":
        lines.append(head_line(e))
    lines += [note for side in ("full", "lora") if (note := _gradients_note(side, e[side]["memory"]))]
    if e["model"].get("note"):
        lines.append(e["model"]["note"])
    return "\n\n".join(lines)


def head_line(e: dict) -> str:
    """How the classifier head adds to the LoRA-only count (the textbook's 294,912 for BERT-base r=8 q,v)."""
    from engine.architectures import classifier_head

    only, trainable = e["reduction"]["lora_params"], e["lora"]["params"]["trainable"]
    head = e["settings"].get("modules_to_save") or classifier_head(e["model"]["model_type"])
    return (f"Sequence classification: {only:,} LoRA parameters plus {trainable - only:,} in the classifier head "
            f"({' + '.join(head)}, trained in full) = {trainable:,} trainable; no MLM head or vocabulary "
            "projection, so the logits are a few bytes per sequence.")


def _gradients_note(side: str, memory: dict) -> str:
    """Why the peak can hold fewer gradients than the step makes (a reader's first question)."""
    held, whole = memory["parts"]["gradients"], memory["gradients"]
    if held >= whole:
        return ""
    name = "Full fine-tuning" if side == "full" else "LoRA"
    return (f"{name}: the peak comes at *{memory['moment']}*, when {held / GIB:.3f} of the step's "
            f"{whole / GIB:.3f} GiB of gradients exist yet; the rest appear later in backward, as the "
            f"activations they replace are freed, so they never add to the peak.")


def side_by_side(e: dict) -> pd.DataFrame:
    rows = []

    def row(label, fn, unit=""):
        rows.append({"": label, "Full fine-tuning": fn(e["full"]) + unit, "LoRA": fn(e["lora"]) + unit})

    row("trainable parameters", lambda s: f"{s['params']['trainable']:,}")
    row("trainable share", lambda s: f"{s['params']['trainable_percent']:.3f}%")
    row("peak moment", lambda s: s["memory"]["moment"])
    for part in PARTS:  # what is alive at that moment, so it adds up to the peak
        label = PART_LABELS.get(part, part)
        row(f"memory at the peak: {label}", lambda s, p=part: f"{s['memory']['parts'][p] / GIB:.3f}", " GiB")
    row("peak allocated (max_memory_allocated)", lambda s: f"{s['memory']['peak_allocated'] / GIB:.3f}", " GiB")
    row("total with overhead", lambda s: f"{s['memory']['total'] / GIB:.3f}", " GiB")
    row(f"fits {e['gpu']['name']}", lambda s: "yes" if s["memory"]["fits"] else "NO")
    row("saved for backward (whole step)", lambda s: f"{s['memory']['saved_for_backward'] / GIB:.3f}", " GiB")
    row("gradients (whole step)", lambda s: f"{s['memory']['gradients'] / GIB:.3f}", " GiB")
    row("optimizer state (whole step)", lambda s: f"{s['memory']['optimizer'] / GIB:.3f}", " GiB")
    row("checkpoint on disk (model / adapter)", lambda s: f"{s['checkpoint']['model_or_adapter'] / MIB:.1f}", " MiB")
    row("resumable checkpoint (+ optimizer)", lambda s: f"{s['checkpoint']['resumable_checkpoint'] / MIB:.1f}", " MiB")
    row("GFLOPs per token (forward + backward)", lambda s: f"{s['flops']['per_token'] / 1e9:.3f}")
    row("  forward / backward", lambda s: f"{s['flops']['per_token_forward'] / 1e9:.3f} / "
                                         f"{s['flops']['per_token_backward'] / 1e9:.3f}")
    row("  6N rule of thumb", lambda s: f"{s['flops']['six_n_per_token'] / 1e9:.3f}")
    row("  attention score/context matmuls", lambda s: f"{s['flops']['attention_per_token'] / 1e9:.4f}")
    row("  MLM head share", lambda s: f"{100 * s['flops']['head_share']:.1f}%")
    if e["full"]["time"]:
        row("PFLOPs per epoch", lambda s: f"{s['flops']['per_epoch'] / 1e15:.2f}")
        row("tokens/s", lambda s: f"{s['time']['tokens_per_s']:,.0f}")
        row("time per epoch", lambda s: duration(s["time"]["seconds_per_epoch"]))
        row("cost per epoch", lambda s: money(s["time"]["cost_per_epoch"]))
        row(f"total for {e['full']['time']['epochs']:g} epochs",
            lambda s: f"{duration(s['time']['total_seconds'])}, {money(s['time']['total_cost'])}")
    return pd.DataFrame(rows)


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def money(dollars: float) -> str:
    return f"${dollars:.4f}" if dollars < 0.01 else f"${dollars:,.2f}"


def formula_md(e: dict) -> str:
    red = e["reduction"]
    lines = ["**The textbook's reduction, filled in** — LoRA replaces the update of a d×k weight by "
             "B (d×r) · A (r×k):"]
    lines += [f"- {row['examples']} ({row['count']} matrices): {row['text']}" for row in red["per_shape"]]
    lines.append(f"- all targeted layers: {red['text']}")
    return "\n".join(lines)


def calibration_md(c: dict | None) -> str:
    if not c:
        return "Pick a finished run to compare its measured peak memory and speed with the prediction."
    ratio = f" (predicted / measured = {c['peak_ratio']:.2f})" if c.get("peak_ratio") else ""
    s = c["settings"]
    return "\n".join([
        f"**Run {c['run_id']}** ({s['method']}, {s['model']}, batch {s['batch_size']}, {s['seq_len']} tokens, "
        f"{s['precision']}, device {c['device']}):",
        "",
        "| | measured | predicted |",
        "|---|---|---|",
        f"| peak memory | {c['measured_peak_memory_bytes'] / GIB:.3f} GiB | "
        f"{c['predicted_peak_memory_bytes'] / GIB:.3f} GiB{ratio} |",
        f"| tokens/s | {c['measured_tokens_per_s']:,.0f} | {c['predicted_tokens_per_s']:,.0f} "
        f"(at {DEFAULT_UTILISATION:.0%} of peak) |",
        "",
        f"Implied utilisation of the chosen GPU: {c['implied_utilisation']:.1%}. {c['note']}",
    ])


@user_errors
def on_model(model: str):
    """The model's LoRA presets, a line about it, and its family's masking rate (ModernBERT: 30%).
    A model the cost model cannot read is said under the field (Estimate then says it as a toast)."""
    from engine.architectures import masking_default

    try:
        arch = load_arch((model or DEFAULT_MODEL).strip())
    except UserError as exc:
        return gr.update(), gr.update(), f"⚠️ {html.escape(str(exc), quote=False)}", gr.update()
    presets = target_presets(arch)
    first = next(iter(presets))
    rate, reason = masking_default(arch.model_type)
    return (gr.update(choices=[*presets, CUSTOM], value=first), _targets_text(presets[first]),
            f"{html.escape(arch.name)}: {arch.layers} layers, hidden {arch.hidden}, {arch.heads} heads, vocabulary "
            f"{arch.vocab:,}, at most {arch.max_length:,} tokens. Masking {rate:.0%}: {reason}", rate)


def on_target_preset(model: str, choice: str):
    if choice == CUSTOM:
        return gr.update()
    presets = target_presets(load_arch((model or DEFAULT_MODEL).strip()))
    return _targets_text(presets[choice]) if choice in presets else gr.update()


def _targets_text(targets) -> str:
    return targets if targets == ALL_LINEAR else ", ".join(targets)


GPU_FIELDS = ("gpu_memory_gib", "tflops_16bit", "tflops_fp32", "price_per_hour")


def gpu_figures(name: str) -> dict[str, str]:
    """A preset's figures, by EstimateRequest field (the boxes hold text, so each stays editable)."""
    p = preset(name)
    return dict(zip(GPU_FIELDS, map(str, (p.memory_gib, p.tflops_16bit, p.tflops_fp32, p.price_per_hour))))


def price_note(name: str) -> str:
    p = preset(name)
    return f"Price read {p.price_date}: {p.price_source}. Memory is what PyTorch reports (GiB)."


@user_errors
def count_corpus(source: str, seq_len):
    counted = bundled_corpus_tokens(source or "imdb", seq_len)
    return f"{counted['tokens']:,}", counted["note"]


@user_errors
def tokens_from_dataset_tab(stats: dict | None, seq_len):
    """Training tokens per epoch of the corpus last analysed in the Dataset tab."""
    if not stats or not (stats.get("chunks") or {}).get("train"):
        raise UserError("No corpus analysed yet: press 'Analyse corpus' in the Dataset tab first "
                        "(bundled, Hub or your upload), then come back.")
    size = int(stats["chunk_size"])
    chunks = int(stats["chunks"]["train"]["chunks"])
    note = (f"{stats.get('corpus', 'The Dataset tab corpus')}, train split: {chunks:,} chunks of {size} tokens "
            f"(tokenizer of {stats.get('model', {}).get('ref', 'its model')}).")
    try:
        seq = whole(seq_len, "Sequence length")
    except UserError:  # compared below only to warn; a bad box is the estimate's to report
        seq = size
    if seq != size:
        note += (f" The Dataset tab cut it into {size}-token chunks and the sequence length here is {seq}: "
                 f"set one to the other for a consistent estimate.")
    return f"{chunks * size:,}", note


def refresh_runs():
    return gr.update(choices=[("none", ""), *finished_runs()], value="")


# ---------------------------------------------------------------- layout


def render(dataset_stats: gr.JSON | None = None) -> None:
    """Build the tab; `dataset_stats` (the Dataset tab's JSON) lets it take the corpus size from there."""
    gr.Markdown(
        "### What will it cost? Full fine-tuning versus LoRA\n"
        "Parameter counts are exact (the model is built on PyTorch's meta device and wrapped by peft, with no "
        "weights). Memory adds weights, gradients, optimizer state, the activations autograd keeps for backward "
        "(replayed op by op), the loss's vocabulary-sized buffers and framework overhead. Our trainer applies the "
        "MLM head, and the last layer past its attention, to the masked positions only; switch to *every position* "
        "to see what the usual head costs."
    )
    arch = load_arch(DEFAULT_MODEL)
    presets = target_presets(arch)
    first_gpu = gpu_figures(DEFAULT_GPU)
    form = Form(EstimateRequest)  # form["name"] = widget: the name is the /estimate parameter it fills
    with gr.Row():
        with gr.Column():
            gr.Markdown("**Model and LoRA**")
            form["model"] = model = gr.Dropdown(
                list(ARCH_CHOICES), value=DEFAULT_MODEL, allow_custom_value=True,
                label="Architecture: bundled config, 'bundled' MiniLM, a folder or a Hub id", elem_id="costs-model")
            model_md = gr.Markdown(elem_id="costs-model-info")
            form["task"] = gr.Radio(TASK_CHOICES, value="mlm", label="Task", elem_id="costs-task",
                                    info="a classifier has no MLM head: a [CLS] pooler and classifier instead, "
                                         "trained in full next to LoRA")
            with gr.Row():
                form["lora_r"] = gr.Number(8, precision=0, label="LoRA rank r", elem_id="costs-r")
                form["lora_alpha"] = gr.Number(16, label="LoRA alpha")
                form["lora_dropout"] = gr.Number(0.05, label="LoRA dropout")
            target_preset = gr.Dropdown([*presets, CUSTOM], value=next(iter(presets)), label="Target modules preset")
            form["targets"] = targets = gr.Textbox(_targets_text(next(iter(presets.values()))),
                                                   elem_id="costs-targets",
                                                   label="Target modules (comma-separated, or all-linear)")
            form["modules_to_save"] = gr.Textbox("", label="Modules to save (trained in full next to LoRA; optional)")
        with gr.Column():
            gr.Markdown("**Training step**")
            with gr.Row():
                form["batch_size"] = gr.Number(32, precision=0, label="Batch size", elem_id="costs-batch")
                form["seq_len"] = seq_len = gr.Number(128, precision=0, label="Sequence length (tokens)",
                                                     elem_id="costs-seq")
            form["precision"] = gr.Radio([(v, k) for k, v in PRECISION_LABELS.items()], value="fp16",
                                         label="Precision")
            form["optimizer"] = gr.Radio([(v, k) for k, v in OPTIMIZER_LABELS.items()], value="adamw",
                                         label="Optimizer")
            form["grad_checkpointing"] = gr.Checkbox(False, label="Gradient checkpointing")
            form["head"] = gr.Radio([("masked positions only (this app's trainer)", "masked"),
                                     ("every position", "all")], value="masked", label="MLM head applied to")
            form["mlm_probability"] = gr.Number(0.15, label="Masking probability", elem_id="costs-mlm-prob")
        with gr.Column():
            gr.Markdown("**GPU, corpus and time**")
            form["gpu"] = gpu = gr.Dropdown(list(PRESETS), value=DEFAULT_GPU,
                                            label="GPU preset (every figure editable)")
            with gr.Row():
                form["gpu_memory_gib"] = gr.Textbox(first_gpu["gpu_memory_gib"], label="Memory (GiB)")
                form["tflops_16bit"] = gr.Textbox(first_gpu["tflops_16bit"], label="16-bit TFLOPS (dense)")
                form["tflops_fp32"] = gr.Textbox(first_gpu["tflops_fp32"], label="FP32 TFLOPS")
                form["price_per_hour"] = gr.Textbox(first_gpu["price_per_hour"], label="Price per hour ($)",
                                                    elem_id="costs-price")
            price_md = gr.Markdown(price_note(DEFAULT_GPU))
            with gr.Row():
                form["corpus_tokens"] = corpus_tokens = gr.Textbox("1,280,000", label="Corpus tokens per epoch",
                                                                   elem_id="costs-tokens")
                form["epochs"] = gr.Number(3, label="Epochs")
            # the picker gets the column's width: a corpus name does not fit beside a button
            corpus_source = corpus_picker.render("Count the tokens of a corpus", elem_id="costs-corpus")
            with gr.Row():
                count_btn = gr.Button("Count its tokens", size="sm")
                from_dataset = gr.Button("Use the corpus analysed in the Dataset tab", size="sm",
                                         visible=dataset_stats is not None, elem_id="costs-from-dataset")
            corpus_md = gr.Markdown("1,280,000 = the course's 10,000 chunks of 128 tokens.")
            form["utilisation"] = gr.Textbox(
                "", label=f"Utilisation of peak (blank: {DEFAULT_UTILISATION} or the run's)")
            with gr.Row():
                form["calibration_run"] = run = gr.Dropdown([("none", ""), *finished_runs()], value="",
                                                            label="Calibrate with a finished run")
                refresh = gr.Button("Refresh runs")
    go_btn = gr.Button("Estimate", variant="primary", elem_id="costs-estimate")
    view = Form(EstimateView)
    view["summary"] = gr.Markdown(elem_id="costs-summary")
    view["plot"] = gr.Plot(label="Peak memory by part")
    # wrap + fixed shares: on a phone the two value columns stay on screen next to their row labels
    view["table"] = table("Full fine-tuning and LoRA side by side", ["", "Full fine-tuning", "LoRA"],
                          elem_id="costs-table", max_height=1200, wrap=True, column_widths=["46%", "27%", "27%"])
    view["formula"] = gr.Markdown(elem_id="costs-formula")
    view["calibration"] = gr.Markdown(elem_id="costs-calibration")
    with gr.Accordion("Estimate as JSON (what /estimate returns)", open=False):
        result = gr.JSON(label="estimate")
    cost_fits.render(result)

    # By name: the public /estimate takes its parameter names and order from EstimateRequest.
    go_btn.click(run_estimate, inputs_kwargs=form.complete().kwargs, outputs=result, api_name="estimate").success(
        lambda r: view.updates(show(r)), result, view.complete().outputs, api_visibility="private")
    model.change(on_model, model, [target_preset, targets, model_md, form["mlm_probability"]],
                 api_visibility="private")
    target_preset.change(on_target_preset, [model, target_preset], targets, api_visibility="private")
    gpu.change(lambda name: {**form.updates(gpu_figures(name)), price_md: price_note(name)}, gpu,
               [*(form[n] for n in GPU_FIELDS), price_md], api_visibility="private")
    count_btn.click(count_corpus, [corpus_source, seq_len], [corpus_tokens, corpus_md], api_visibility="private")
    refresh.click(refresh_runs, None, run, api_visibility="private")
    if dataset_stats is not None:
        from_dataset.click(tokens_from_dataset_tab, [dataset_stats, seq_len], [corpus_tokens, corpus_md],
                           api_visibility="private")
