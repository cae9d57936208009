"""Classify tab: train a text classifier (from the base or a finished MLM run), watch it, use it,
and ask whether domain adaptation paid off.

A classifier run is an ordinary run of kind "classify": the same registry, worker process,
queue, owner token and `?run=` link as the Train tab's. Its settings form maps ClassifyConfig
fields to widgets by name (components/forms.py). The run view polls only new metric rows.
Payoff experiments and inference live in components/classify_extras.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from components import classify_api, classify_extras
from components.classify_plots import confusion_figure, eval_figure, summary_markdown, train_figure
from components.common import user_errors
from components.forms import Form, skipped
from components.training import PRIVATE, first_owner_token
from engine.data import BUNDLED_SOURCES, CorpusConfig
from engine.errors import UserError
from engine.models import LOAD_LOCK
from engine.run_folder import RESUMABLE_STATES, is_final
from engine.runs import browser_secret, finished_runs, jobs, owner_key, resolve_start
from engine.training.classify import DEFAULT_LR, LEARNING_RATE_GUIDANCE, TEXTBOOK_LR, ClassifyConfig

TEXTBOOK_TABLE = (
    "| method | textbook (bert-base, 3 epochs) | default here |\n|---|---|---|\n"
    f"| full | {TEXTBOOK_LR['full']:g} | {DEFAULT_LR['full']:g} |\n"
    f"| LoRA | {TEXTBOOK_LR['lora']:g} (1e-4 to 3e-4) | {DEFAULT_LR['lora']:g} |"
)
LORA_NOTE = ("The textbook's LoRA trains 294,912 weights: bert-base's 12 layers x (query, value) x r=8 x (768 + 768). "
             "Here the count is the chosen model's adapters (its layers and hidden size) plus the classifier head, "
             "which trains in full beside them; the run's summary gives the exact count and its breakdown.")
FORM_FIELDS = ("model", "corpus", "method", "learning_rate", "max_length", "epochs", "batch_size", "seed",
               "train_size", "test_size", "eval_every")
NO_RUN = "No classifier run yet: pick a start model and data, then press **Start classifier**."


def start_choices() -> list[tuple[str, str]]:
    runs = [(f"MLM run {f.run_id} ({f.config().get('method')}, {f.config().get('model')})", f.run_id)
            for f in finished_runs("mlm", jobs.registry().root)]
    return [("bundled MiniLM (base)", "bundled"), *runs]


def corpus_choices() -> list[tuple[str, str]]:
    from engine.data import list_corpora

    # Only corpora stored with a label column can train a classifier (the engine checks the labels themselves).
    return [(c.name, c.corpus_id) for c in list_corpora() if c.label_column]


def corpus_of(corpus_id: str) -> CorpusConfig:
    if corpus_id in BUNDLED_SOURCES:
        return CorpusConfig(source=corpus_id)
    return CorpusConfig(source="stored", corpus_id=corpus_id)


def config_from(values: dict) -> ClassifyConfig:
    """The form's values as a ClassifyConfig (a run id as start model names its final/ folder)."""
    values = dict(values)
    values["corpus"] = corpus_of(values.get("corpus") or "imdb")
    values["model"] = resolve_start(values.get("model") or "bundled", jobs.registry().root)
    return ClassifyConfig(**values).validated()


def check_and_count(cfg: ClassifyConfig) -> str:
    """The engine's preflight (labels, sizes, max length) and the exact trainable-parameter count,
    with why it differs from the textbook's 294,912; builds the model once, in this process."""
    from engine.training import lora
    from engine.training.classify import build_classifier, lora_note, preflight, wrap_lora

    checked = preflight(cfg)
    with LOAD_LOCK:  # see engine.models.LOAD_LOCK: other tabs load models in other threads
        model, _, info = build_classifier(cfg.model, checked["labels"], cfg.seed)
    if cfg.method == "lora":
        model = wrap_lora(model, cfg, info)
    trainable, total = lora.count_params(model)
    note = (lora_note(model, trainable, info, cfg) if cfg.method == "lora"
            else "Full fine-tuning trains every weight of the encoder and the classifier head.")
    return (f"**{trainable:,} trainable parameters** of {total:,} ({cfg.method}). {note}\n\n"
            f"Labels: {', '.join(checked['labels'])}; {checked['n_train']:,} train / {checked['n_test']:,} test "
            f"examples; learning rate {checked['learning_rate']:g}.")


def build_form() -> tuple[Form, gr.Button, gr.Markdown]:
    """The settings form, and the check-and-count button with its output."""
    form = Form(ClassifyConfig)
    d = ClassifyConfig()
    form["model"] = gr.Dropdown(start_choices(), value="bundled", allow_custom_value=True, elem_id="cls-model",
                                label="Start model (a finished MLM run, 'bundled', a folder or a Hub id)")
    form["corpus"] = gr.Dropdown(corpus_choices(), value="imdb", elem_id="cls-corpus",
                                 label="Labelled data (a stored corpus with a label column)")
    with gr.Row():
        form["method"] = gr.Radio(["full", "lora"], value=d.method, label="Method", elem_id="cls-method")
        count_btn = gr.Button("Check settings and count trainable parameters", size="sm", elem_id="cls-count")
    count_md = gr.Markdown(LORA_NOTE, elem_id="cls-count-info")
    form["learning_rate"] = gr.Number(0, label="Learning rate (0 = the method's default)", elem_id="cls-lr")
    gr.Markdown(TEXTBOOK_TABLE, elem_id="cls-lr-table")
    with gr.Accordion("Why these learning rates?", open=False):
        gr.Markdown(LEARNING_RATE_GUIDANCE)
    with gr.Row():
        form["max_length"] = gr.Number(d.max_length, precision=0, label="Max length (tokens)", elem_id="cls-max-length")
        form["epochs"] = gr.Number(d.epochs, label="Epochs", elem_id="cls-epochs")
        form["batch_size"] = gr.Number(d.batch_size, precision=0, label="Batch size", elem_id="cls-batch")
    with gr.Row():
        form["seed"] = gr.Number(d.seed, precision=0, label="Seed", elem_id="cls-seed")
        form["train_size"] = gr.Number(d.train_size, precision=0, label="Train examples", elem_id="cls-train-size")
        form["test_size"] = gr.Number(d.test_size, precision=0, label="Test examples", elem_id="cls-test-size")
        form["eval_every"] = gr.Number(d.eval_every, precision=0, label="Evaluate every (steps, 0 = at the end)",
                                       elem_id="cls-eval-every")
    return form, count_btn, count_md


def empty_view() -> dict:
    return {"run_id": "", "offset": 0, "identity": None, "rows": [], "signature": None}


@dataclass
class ClassifyPanel:
    """What the Classify tab shows of the attached run, one field per widget (components/forms.py
    maps them); a field left at gr.skip() leaves its widget as it is."""

    view: Any = skipped()
    run_md: Any = skipped()
    train_plot: Any = skipped()
    eval_plot: Any = skipped()
    confusion_plot: Any = skipped()
    summary: Any = skipped()
    cancel: Any = skipped()
    resume: Any = skipped()


def poll(view: dict, force: bool = False) -> ClassifyPanel:
    """The attached run's panel; every field skipped when nothing changed since the last poll."""
    if not view.get("run_id"):
        return ClassifyPanel()
    registry = jobs.registry()
    folder = registry.folder(view["run_id"])
    status = registry.status(view["run_id"], detail=False)
    if folder.metrics_identity() != view.get("identity"):  # a resume rewrote the file: read it again
        view = {**view, "offset": 0, "rows": [], "identity": folder.metrics_identity()}
    rows, offset = folder.metrics(view["offset"])
    signature = (status.get("state"), status.get("step"), status.get("message"))
    if not rows and signature == view.get("signature") and not force:
        return ClassifyPanel()
    view = {**view, "offset": offset, "rows": view["rows"] + rows, "signature": signature}
    owner = view.get("owner", False)
    state = status.get("state")
    md = (f"**Run `{view['run_id']}`** (classify, {status.get('method')}) — **{state}**, step "
          f"{status.get('step') or 0} of {status.get('total_steps') or '?'}. {status.get('message') or ''}\n\n"
          f"Start model: `{status.get('model')}`. Share: `?run={view['run_id']}`"
          + ("" if owner else " (read-only: another browser started it)"))
    summary = folder.summary() if is_final(status) else {}
    return ClassifyPanel(view, md, train_figure(view["rows"]), eval_figure(view["rows"]),
                         confusion_figure(view["rows"]), summary_markdown(summary),
                         gr.Button(interactive=owner and not is_final(status)),
                         gr.Button(interactive=owner and state in RESUMABLE_STATES))


def attach(run_id: str, owner_token: str) -> dict:
    registry = jobs.registry()
    folder = registry.folder(run_id)
    if folder.kind() != "classify":
        raise UserError(f"Run {folder.run_id} is an MLM run: open it on the Train tab.")
    return {**empty_view(), "run_id": folder.run_id, "owner": registry.can_control(folder.run_id, owner_token)}


def render(demo: gr.Blocks) -> None:
    registry = jobs.registry()
    secret, key = browser_secret(registry.root), owner_key(registry.root)
    owner = gr.BrowserState("", storage_key="mlm-studio-owner", secret=secret)
    current = gr.BrowserState("", storage_key="mlm-studio-classify-run", secret=secret)
    panel = Form(ClassifyPanel)  # the widgets a poll writes to, by ClassifyPanel field
    panel["view"] = view = gr.State(empty_view())
    gr.Markdown("Train a text classifier on labelled data, from the base model or from an encoder adapted on the "
                "Train tab, in a background worker. Classifier runs keep no checkpoints: Resume trains again "
                "from the start.")
    with gr.Row():
        with gr.Column(scale=2):
            form, count_btn, count_md = build_form()
            with gr.Row():
                start_btn = gr.Button("Start classifier", variant="primary", elem_id="cls-start")
                panel["cancel"] = cancel_btn = gr.Button("Cancel", variant="stop", interactive=False,
                                                         elem_id="cls-cancel")
                panel["resume"] = resume_btn = gr.Button("Resume", interactive=False, elem_id="cls-resume")
                refresh_btn = gr.Button("Refresh run lists", size="sm", elem_id="cls-refresh")
        with gr.Column(scale=3):
            panel["run_md"] = gr.Markdown(NO_RUN, elem_id="cls-run-info")
            with gr.Row():
                panel["train_plot"] = gr.Plot(label="Training", elem_id="cls-train-plot")
                panel["eval_plot"] = gr.Plot(label="Evaluation", elem_id="cls-eval-plot")
            panel["confusion_plot"] = gr.Plot(label="Confusion matrix", elem_id="cls-confusion-plot")
            panel["summary"] = gr.Markdown(elem_id="cls-summary")
    extras = classify_extras.render(demo, form, owner, key, secret, config_from)
    timer = gr.Timer(1.0)
    outputs = panel.complete().outputs

    def show(state: dict, force: bool = False) -> dict:
        return panel.updates(poll(state, force=force))

    @user_errors
    def start(owner_token, request: gr.Request, *values):
        owner_token = owner_token or first_owner_token(key, getattr(request, "session_hash", None))
        cfg = config_from(dict(zip(form.names, values)))
        try:
            run_id = jobs.submit(cfg, owner=owner_token)
        except jobs.DuplicateSubmission as dup:
            gr.Warning(str(dup))
            run_id = dup.run_id
        gr.Info(f"Classifier run {run_id} submitted.")
        return {owner: owner_token, current: run_id, **show(attach(run_id, owner_token), force=True)}

    def restore(owner_token, run_id, state, request: gr.Request):
        """Reattach after a reload, or open `?run=<id>` when it is a classifier run."""
        shared = (request.query_params.get("run") or "").strip() if request else ""
        target = shared or run_id
        if not target or target == state.get("run_id"):
            return gr.skip()  # one skip for every output
        try:
            return show(attach(target, owner_token), force=True)
        except UserError:
            return gr.skip()  # an MLM run's link, or a removed run: the Train tab says so

    @user_errors
    def cancel(owner_token, state):
        gr.Info(jobs.cancel(state.get("run_id", ""), owner=owner_token))
        return show(state, force=True)

    @user_errors
    def resume(owner_token, state):
        gr.Info(jobs.resume(state.get("run_id", ""), owner=owner_token))
        return show(attach(state["run_id"], owner_token), force=True)

    def refresh():
        runs = classify_extras.classifier_choices()
        return (gr.Dropdown(choices=start_choices()), gr.Dropdown(choices=corpus_choices()),
                gr.Dropdown(choices=runs), gr.Dropdown(choices=start_choices()[1:]))

    @user_errors
    def count(*values):
        return check_and_count(config_from(dict(zip(form.names, values))))

    form_inputs = [form[n] for n in form.names]
    count_btn.click(count, form_inputs, count_md, **PRIVATE)
    start_btn.click(start, [owner, *form_inputs], [owner, current, *outputs], **PRIVATE)
    cancel_btn.click(cancel, [owner, view], outputs, **PRIVATE)
    resume_btn.click(resume, [owner, view], outputs, **PRIVATE)
    timer.tick(show, view, outputs, concurrency_limit=None, show_progress="hidden", **PRIVATE)
    refresh_btn.click(refresh, None, [form["model"], form["corpus"], extras["models"], extras["mlm_run"]], **PRIVATE)
    demo.load(restore, [owner, current, view], outputs, **PRIVATE)
    current.change(restore, [owner, current, view], outputs, **PRIVATE)
    classify_api.register()
