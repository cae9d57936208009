"""The Train tab's form: one widget per TrainConfig field, with the course's defaults.

A widget's name is the TrainConfig field it sets (components/forms.py checks it), so a new
hyperparameter is one field on the dataclass plus one line in `build_form`. The corpus
widgets are CorpusConfig's fields, mapped by `config_from_values`.
"""

from __future__ import annotations

import html

import gradio as gr

from components import corpus_picker
from components.forms import Form
from engine.architectures import DEFAULT_MASK_RATES
from engine.data import CorpusConfig, config_for, store
from engine.models import default_model_ref
from engine.numbers import optional_whole
from engine.training import (
    COMPILE_MODES,
    MAX_PROMPTS,
    NAME_MAX,
    NOTES_MAX,
    PRECISIONS,
    TrainConfig,
    default_batch_size,
    default_lr,
)

HUB = [("A Hugging Face Hub dataset", "hub")]  # the stored corpora come first (components/corpus_picker.py)
CORPUS_WIDGETS = ("corpus_source", "hub_id", "text_column", "max_docs")


class TrainForm(Form):
    """The TrainConfig form, plus the group that shows the LoRA fields only for LoRA."""

    def __init__(self):
        super().__init__(TrainConfig, extra=CORPUS_WIDGETS)
        self.lora_group: gr.Group | None = None


def build_form(on_gpu: bool) -> TrainForm:
    """Create the widgets in the current layout context (labels sit next to each widget)."""
    d = TrainConfig()
    form = TrainForm()
    w = form  # w["name"] = widget: the form refuses a name TrainConfig does not have
    with gr.Row():
        w["name"] = gr.Textbox("", label="Run name (empty: model · method · corpus · time)", max_length=NAME_MAX,
                               elem_id="train-name", scale=2)
        w["notes"] = gr.Textbox("", label="Notes (optional)", max_length=NOTES_MAX, lines=1, max_lines=4,
                                elem_id="train-notes", scale=3)
    w["model"] = gr.Textbox(default_model_ref(), label="Model", elem_id="train-model",
                            info="'bundled' (all-MiniLM-L6-v2, head untrained), a Hub id such as "
                                 "distilbert-base-uncased, or a local folder with a saved model")
    with gr.Row():
        w["corpus_source"] = corpus_picker.render("Corpus (analyse your own on the Dataset tab)",
                                                  elem_id="train-corpus", extra=HUB, scale=3)
        # scale: a corpus name ("IMDb reviews (bundled) · 25,000") needs more room than a number
        w["max_docs"] = gr.Number(0, label="Documents to use (0 = all)", precision=0, minimum=0,
                                  elem_id="train-max-docs", scale=1, min_width=120)
    with gr.Row(visible=False) as hub_row:
        w["hub_id"] = gr.Textbox("", label="Hub dataset id", placeholder="stanfordnlp/imdb")
        w["text_column"] = gr.Textbox("text", label="Text column")
    with gr.Row():
        w["method"] = gr.Radio([("Full fine-tuning", "full"), ("LoRA", "lora")], value="full", label="Method")
        w["learning_rate"] = gr.Number(default_lr("full"), label="Learning rate", info="2e-5 full, 2e-4 LoRA",
                                       elem_id="train-lr")
    with gr.Group(visible=False) as form.lora_group:
        with gr.Row():
            w["lora_r"] = gr.Number(d.lora_r, label="LoRA rank r", precision=0, minimum=0)
            w["lora_alpha"] = gr.Number(d.lora_alpha, label="LoRA alpha")
            w["lora_dropout"] = gr.Number(d.lora_dropout, label="LoRA dropout")
        w["lora_targets"] = gr.Textbox("", label="LoRA target modules (comma-separated)",
                                       info="empty = the architecture's default: query,value for BERT/RoBERTa, "
                                            "q_lin,v_lin for DistilBERT, Wqkv for ModernBERT, "
                                            "q_proj,v_proj for EuroBERT")
        w["lora_train_head"] = gr.Checkbox(
            default_model_ref() == "bundled", label="Also train the MLM head's transform",
            info="needed for the bundled MiniLM, whose head is untrained: LoRA alone would keep it random "
                 "(adds hidden x hidden weights, not the vocabulary)")
    with gr.Accordion("Data and masking", open=False):
        with gr.Row():
            w["chunk_size"] = gr.Number(d.chunk_size, label="Chunk size (tokens)", precision=0, elem_id="train-chunk")
            w["train_size"] = gr.Number(d.train_size, label="Training chunks (0 = all)", precision=0,
                                        elem_id="train-train-size")
            w["test_size"] = gr.Number(d.test_size, label="Evaluation chunks (0 = all)", precision=0,
                                       elem_id="train-test-size")
        with gr.Row():
            w["mlm_probability"] = gr.Number(d.mlm_probability, label="Masking probability", elem_id="train-mlm-prob")
            w["whole_word_mask"] = gr.Checkbox(d.whole_word_mask, label="Whole-word masking")
    with gr.Accordion("Optimisation", open=False):
        with gr.Row():
            w["epochs"] = gr.Number(d.epochs, label="Epochs", elem_id="train-epochs")
            w["max_steps"] = gr.Number(d.max_steps, label="Max steps (0 = use epochs)", precision=0,
                                       elem_id="train-max-steps")
            w["batch_size"] = gr.Number(default_batch_size(on_gpu), label="Batch size", precision=0,
                                        elem_id="train-batch")
            w["grad_accum_steps"] = gr.Number(d.grad_accum_steps, label="Gradient accumulation", precision=0)
        with gr.Row():
            w["warmup_steps"] = gr.Number(d.warmup_steps, label="Warmup steps", precision=0)
            w["weight_decay"] = gr.Number(d.weight_decay, label="Weight decay (not on bias/LayerNorm)")
            w["max_grad_norm"] = gr.Number(d.max_grad_norm, label="Gradient clipping (max norm)")
        with gr.Row():
            w["eval_every"] = gr.Number(d.eval_every, label="Evaluate every (steps)", precision=0,
                                        elem_id="train-eval-every")
            w["log_every"] = gr.Number(d.log_every, label="Log every (steps)", precision=0, elem_id="train-log-every")
            w["save_every"] = gr.Number(d.save_every, label="Checkpoint every (steps)", precision=0)
        with gr.Row():
            w["precision"] = gr.Radio(list(PRECISIONS), value=d.precision, label="Precision",
                                      info="auto: fp32 on CPU, bf16/fp16 mixed precision on GPU")
            w["compile"] = gr.Radio(list(COMPILE_MODES), value=d.compile, label="Compile the step",
                                    info="GPU: torch.compile (+ CUDA graphs) runs 1.1-2.8x faster after 20-45 s "
                                         "of compiling (docs/gpu.md); off suits short or CPU runs")
            w["seed"] = gr.Number(d.seed, label="Seed", precision=0)
    with gr.Accordion("Pinned prompts", open=False):
        w["pinned_prompts"] = gr.Textbox("", lines=3, label=f"Up to {MAX_PROMPTS} prompts, one per line, "
                                                            "one [MASK] each",
                                         placeholder="The film was [MASK].", elem_id="train-pinned",
                                         info="their top-3 guesses are recorded at each evaluation")
    w["corpus_source"].change(lambda s: gr.Row(visible=s == "hub"), w["corpus_source"], hub_row,
                              api_visibility="private", queue=False)
    return form


def config_from_values(names: list[str], values: list) -> TrainConfig:
    """The TrainConfig the widgets describe; UserError (from validation) names a bad field."""
    raw = dict(zip(names, values))
    corpus = {k: raw.pop(k) for k in CORPUS_WIDGETS}
    source = corpus["corpus_source"]
    docs = optional_whole(corpus["max_docs"], "Documents to use")
    if source == "hub":
        raw["corpus"] = CorpusConfig(source="hub", hub_id=(corpus["hub_id"] or "").strip(),
                                     text_column=(corpus["text_column"] or "text").strip(), max_docs=docs)
    else:  # a stored corpus (the bundled ones keep their own source names)
        raw["corpus"] = config_for(source, max_docs=docs)
    raw["model"] = (raw.get("model") or "").strip() or "bundled"
    return TrainConfig.from_dict(raw)


def method_changed(method: str, lr, targets: str, model_ref: str):
    """LoRA fields only for LoRA; the lr default follows the method unless the user changed it."""
    from engine.training import default_lora_targets

    other = default_lr("full" if method == "lora" else "lora")
    new_lr = default_lr(method) if lr in (None, other) else lr
    if method == "lora" and not (targets or "").strip():
        targets = ",".join(default_lora_targets(model_ref))
    return gr.Group(visible=method == "lora"), new_lr, targets


def model_changed(model_ref: str, method: str, mlm_probability):
    """Show the new architecture's default LoRA targets (a BERT's names do not exist in DistilBERT),
    train the head with LoRA when the model has none (the bundled MiniLM), and offer the family's
    own masking rate (ModernBERT: 30%) unless the user typed another one."""
    from engine.architectures import masking_default
    from engine.errors import UserError
    from engine.models import model_type_of
    from engine.training import default_lora_targets

    targets = ",".join(default_lora_targets(model_ref)) if method == "lora" else ""
    try:
        rate, reason = masking_default(model_type_of(model_ref))
    except UserError:  # not loadable: Start will say why; keep the form as it is
        return targets, (model_ref or "").strip() in ("", "bundled"), gr.skip()
    offered = mlm_probability in (None, *DEFAULT_MASK_RATES)
    prob = gr.Number(value=rate if offered else mlm_probability, info=f"default {rate:.0%}: {reason}")
    return targets, (model_ref or "").strip() in ("", "bundled"), prob


def values_from_config(names: list[str], config: dict) -> list:
    """Widget values that show a run's own settings (config.json), so a reattached or shared
    run is not displayed next to a form that describes something else. Fields the form cannot
    show (an upload corpus from the CLI, unknown keys) are left as they are."""
    corpus = config.get("corpus") or {}
    flat = dict(config)
    source = corpus.get("corpus_id") if corpus.get("source") == "stored" else corpus.get("source")
    if source == "hub" or source in store.BUNDLED or (source and corpus.get("source") == "stored"):
        flat.update(corpus_source=source, hub_id=corpus.get("hub_id", ""),
                    text_column=corpus.get("text_column", "text"), max_docs=corpus.get("max_docs", 0))
    flat["lora_targets"] = ",".join(config.get("lora_targets") or [])
    flat["pinned_prompts"] = "\n".join(config.get("pinned_prompts") or [])
    return [flat[n] if n in flat else gr.skip() for n in names]


def estimate_markdown(names: list[str], values: list, on_gpu: bool) -> str:
    """The time estimate for what the form says now (engine/runs/eta.py), or what to fix first."""
    from engine.errors import UserError
    from engine.runs import describe, estimate, registry

    try:
        cfg = config_from_values(names, values)
    except UserError as exc:
        return f"**Estimate:** fix the form first: {html.escape(str(exc))}"
    from engine.hardware import apply_limits, detect

    try:  # what Start will run: this hardware's caps (a CPU Space stops at 300 steps) applied first
        cfg, _ = apply_limits(cfg, detect())
    except UserError:
        pass  # training disabled here (ZeroGPU): Start says so
    eta = estimate(cfg, "cuda" if on_gpu else "cpu", registry().root)
    smaller = (f" A corpus with fewer than {cfg.train_size:,} chunks trains fewer steps."
               if cfg.train_size and not cfg.max_steps else "")
    return f"**Estimate before Start** ({eta.basis}): {html.escape(describe(eta))}{smaller}"
