"""Train tab: start full or LoRA fine-tuning in a background worker and watch it live.

The tab never trains in the web server: Start calls engine.runs.jobs.submit, which writes the
run folder and starts a worker process. A 0.5 s gr.Timer reads only the new metric rows
(byte offset kept per browser) and redraws the charts. The run id is kept in the
browser (gr.BrowserState), so a reload reattaches; `?run=<id>` opens any run read-only.
Ownership is a random token this browser keeps in gr.BrowserState: only it (or the
admin token) may cancel or resume.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import tempfile
from pathlib import Path

import gradio as gr

from components import pinned_prompts, run_table, training_api
from components.common import chunk_hint, toast, user_errors
from components.forms import Form
from components.run_plots import progress_html
from components.training_form import (
    build_form,
    config_from_values,
    estimate_markdown,
    method_changed,
    model_changed,
    values_from_config,
)
from components.training_view import NO_RUN, RunPanel, attach, blank, empty_view, history, poll, share_url
from engine.errors import UserError
from engine.hardware import detect
from engine.offline import is_offline
from engine.runs import DuplicateSubmission, browser_secret, export, jobs, owner_key

EXPORT_DIR = Path(tempfile.gettempdir()) / "mlm-studio-exports"  # Gradio serves files from the temp dir
PRIVATE = {"api_visibility": "private"}  # UI plumbing; the public API is in training_api.py


def first_owner_token(secret: str, session_hash: str | None) -> str:
    """An unguessable owner token for a page session: an HMAC of its hash with the server-only
    owner key (never the BrowserState key, which Gradio sends to every visitor in /config)."""
    if not session_hash:
        return secrets.token_urlsafe(24)
    return hmac.new(secret.encode(), session_hash.encode(), hashlib.sha256).hexdigest()[:32]


def _hardware_notice(mode) -> None:
    """On ZeroGPU training is off (no long background GPU runs there): say why, offer a
    Duplicate button; on CPU Spaces show the limits before the user fills the form."""
    if not mode.training_allowed:
        gr.Markdown(f"**Training is disabled here.** {mode.reason}", elem_id="train-disabled")
        gr.DuplicateButton("Duplicate this Space to train on your own GPU")
    elif mode.limits.active:
        gr.Markdown(f"**Limits on this hardware:** {mode.limits.describe()}", elem_id="train-limits")


def _config_of(state) -> dict:
    """The attached run's config.json ({} with no run, or when its folder is gone)."""
    run_id = (state or {}).get("run_id")
    if not run_id:
        return {}
    try:
        return jobs.registry().folder(run_id).config()
    except UserError:
        return {}


def page_url(request: gr.Request | None) -> str:
    """This page's address without its query (what a share link starts with)."""
    headers = dict(getattr(request, "headers", {}) or {}) if request else {}
    return str(headers.get("referer", "") or "").split("?", 1)[0]


def share_box_value(state: dict, request: gr.Request) -> str:
    return share_url(state, page_url(request))


def render(demo: gr.Blocks) -> None:
    mode = detect()
    secret = browser_secret(jobs.registry().root)  # BrowserState's encryption key: public (/config)
    key = owner_key(jobs.registry().root)  # what owner tokens derive from: stays on the server
    owner = gr.BrowserState("", storage_key="mlm-studio-owner", secret=secret)
    current = gr.BrowserState("", storage_key="mlm-studio-train-run", secret=secret)
    panel = Form(RunPanel)  # the widgets a poll writes to, by RunPanel field
    panel["view"] = view = gr.State(empty_view())
    gr.Markdown("Fine-tune the model on the corpus with the masked-LM objective, in a background process. "
                "Close or reload the tab at any time: the run goes on, and this tab reattaches.")
    with gr.Row(elem_id="train-layout"):  # on a phone the run column comes first (CSS in app.py)
        with gr.Column(scale=2, elem_id="train-form-column"):
            _hardware_notice(mode)
            form = build_form(mode.on_gpu)
            eta_md = gr.Markdown(elem_id="train-estimate")
            with gr.Row():
                start_btn = gr.Button("Start", variant="primary", elem_id="train-start",
                                      interactive=mode.training_allowed)
                panel["cancel"] = cancel_btn = gr.Button("Cancel", variant="stop", interactive=False,
                                                         elem_id="train-cancel")
                panel["resume"] = resume_btn = gr.Button("Resume", interactive=False, elem_id="train-resume")
            with gr.Row():
                rename_btn = gr.Button("Save name and notes", size="sm", elem_id="train-rename")
                fork_btn = gr.Button("Fork: fill the form with this run's settings", size="sm", elem_id="train-fork")
                command_btn = gr.Button("Show command", size="sm", elem_id="train-command")
            command_md = gr.Markdown(elem_id="train-command-text")
        with gr.Column(scale=3, elem_id="train-run-column"):
            panel["run_md"] = gr.Markdown(NO_RUN, elem_id="train-run-info")
            share_box = gr.Textbox(label="Share this run (opens it read-only)", buttons=["copy"], interactive=False,
                                   elem_id="train-share")
            panel["progress"] = gr.HTML(progress_html({}), elem_id="train-progress-box")
            xaxis = gr.Radio([("Step", "step"), ("Epoch", "epoch")], value="step", label="X axis")
            with gr.Row():
                panel["loss_plot"] = gr.Plot(label="Training loss", elem_id="train-loss-plot")
                panel["ppl_plot"] = gr.Plot(label="Eval perplexity", elem_id="train-ppl-plot")
            with gr.Row():
                panel["lr_plot"] = gr.Plot(label="Learning rate", elem_id="train-lr-plot")
                panel["tps_plot"] = gr.Plot(label="Tokens per second", elem_id="train-tps-plot")
            panel["prompts"] = pinned_prompts.render()
            panel["log"] = gr.Textbox(label="Worker log (last lines)", lines=10, max_lines=20, interactive=False,
                                      autoscroll=True, elem_id="train-log")
            with gr.Accordion("Take the model home", open=False):
                with gr.Row():
                    zip_btn = gr.Button("Prepare zip of the final model or adapter")
                    zip_file = gr.File(label="Download", interactive=False)
                zip_md = gr.Markdown()
                with gr.Row():
                    repo_box = gr.Textbox(label="Hub repository", placeholder="your-name/distilbert-imdb-mlm")
                    token_box = gr.Textbox(label="Hugging Face token (write access; used once, never stored)",
                                           type="password")
                    private_box = gr.Checkbox(True, label="Private repository")
                push_btn = gr.Button("Push to the Hub")
                push_md = gr.Markdown("Offline: pushing to the Hub needs a connection; download the zip instead."
                                      if is_offline() else "")
    with gr.Row():
        gr.Markdown("### Runs on this server")
        refresh_btn = gr.Button("Refresh", size="sm", scale=0)
    panel["history"] = history_df = gr.Dataframe(label="History (click a row to open that run; click a column "
                                                       "header to sort)", interactive=False, elem_id="train-history")
    overlay_pick = gr.Dropdown(run_table.choices(jobs.list_runs()), value=[], multiselect=True,
                               label="Overlay the curves of several runs", elem_id="train-overlay-pick")
    overlay_plot = gr.Plot(label="Training loss and eval perplexity of the picked runs", elem_id="train-overlay")
    timer = gr.Timer(0.5)  # a poll that finds nothing new costs two small file reads and sends nothing

    outputs = panel.complete().outputs
    names = form.names

    def show_run(state, x, force=True):
        """The run panel for `state`, as {widget: value} (force: redraw even what did not change)."""
        return panel.updates(poll(state, x, force=force))

    @user_errors
    def start(owner_token, x, request: gr.Request, *values):
        cfg = config_from_values(names, list(values))
        # This browser's private owner token, made once. It is derived from the page session, not
        # drawn at random, so that two hasty Start clicks on a fresh page (both still without a
        # token) carry the same owner and the second is recognised as a duplicate.
        owner_token = owner_token or first_owner_token(key, getattr(request, "session_hash", None))
        try:
            run_id = jobs.submit(cfg, owner=owner_token)
            gr.Info(f"Run {run_id} submitted.")
        except DuplicateSubmission as dup:
            gr.Warning(str(dup))
            run_id = dup.run_id
        return {owner: owner_token, current: run_id, **show_run(attach(run_id, owner_token), x)}

    def open_shared(owner_token, x, request: gr.Request):
        """`?run=<id>`: open that run for anyone (read-only unless this browser owns it)."""
        shared = (request.query_params.get("run") or "").strip() if request else ""
        if not shared:
            return panel.updates(RunPanel(history=history()))
        try:
            return show_run({**attach(shared, owner_token), "pinned": True}, x)
        except UserError as exc:
            gr.Warning(str(exc))
            return panel.updates(blank({**empty_view(), "pinned": True}, str(exc)))

    def restore(owner_token, current_run, state, x):
        """Reattach after a reload. The BrowserStates live in this tab, and Gradio mounts a tab's
        components (and reads their localStorage) only when the tab is first shown, so this runs
        on their change events rather than in demo.load."""
        target = state.get("run_id") if state.get("pinned") else (current_run or state.get("run_id"))
        if not target:
            return gr.skip()  # one skip for every output
        try:
            fresh = {**attach(target, owner_token), "pinned": bool(state.get("pinned"))}
        except UserError:
            return gr.skip()  # the remembered run is gone (a wiped disk): keep the form
        if fresh["run_id"] == state.get("run_id") and fresh["owner"] == state.get("owner"):
            return gr.skip()
        return show_run(fresh, x)

    @user_errors
    def open_row(owner_token, x, evt: gr.SelectData):
        run_id = str(evt.row_value[0]) if evt.row_value else ""
        return {current: run_id, **show_run(attach(run_id, owner_token), x)}

    def show_settings(state):
        """Fill the form with the attached run's settings (after a reload, a link or a history click)."""
        config = _config_of(state)
        return form.updates(dict(zip(names, values_from_config(names, config)))) if config else gr.skip()

    @user_errors
    def cancel(owner_token, state, x):
        gr.Info(jobs.cancel(state.get("run_id", ""), owner=owner_token))
        return show_run(state, x)

    @user_errors
    def resume(owner_token, state, x):
        gr.Info(jobs.resume(state.get("run_id", ""), owner=owner_token))
        return show_run({**attach(state["run_id"], owner_token), "pinned": state.get("pinned", False)}, x)

    @user_errors
    def rename(owner_token, state, name, notes, x):
        kept = jobs.rename(state.get("run_id", ""), name, notes, owner=owner_token)
        gr.Info(f"Saved the name {kept['name']!r}.")
        return show_run(state, x)

    def fork(state):
        """The attached run's settings in the form, named as a fork; Start then makes a new run."""
        config = _config_of(state)
        if not config:
            raise toast("Open a run first (start one, or click a row of the history).")
        values = dict(zip(names, values_from_config(names, config)))
        values["name"] = f"{config.get('name') or config.get('run_id')} (fork)"[:120]
        gr.Info("The form holds that run's settings: change what you like and press Start for a new run.")
        return form.updates(values)

    @user_errors
    def command(state, *values):
        """The CLI command and gradio_client call for the attached run, else for what the form says."""
        config = _config_of(state) or config_from_values(names, list(values)).to_dict()
        return run_table.commands(config)

    def overlay(run_ids, x):
        runs = []
        for run_id in run_ids or []:
            try:
                folder = jobs.registry().folder(run_id)
            except UserError:
                continue  # removed meanwhile
            runs.append((folder.config().get("name") or run_id, folder.metrics()[0]))
        return run_table.overlay(runs, x)

    @user_errors
    def make_zip(state):
        folder = jobs.run_dir(state.get("run_id", ""))
        path, size = export.zip_final(folder, EXPORT_DIR / folder.name)
        return gr.File(value=str(path)), f"`{path.name}`: {export.human_size(size)}"

    @user_errors
    def push(state, repo_id, token, private):
        url = export.push_to_hub(jobs.run_dir(state.get("run_id", "")), repo_id, token, private)
        return f"Pushed to [{url}]({url})."

    start_inputs = [owner, xaxis, *form.inputs]
    # No disable/enable pair around Start: a failed start once left the button disabled until a
    # reload. trigger_mode="once" ignores clicks while one is pending, and jobs.submit refuses a
    # duplicate within seconds.
    start_btn.click(start, start_inputs, [owner, current, *outputs], trigger_mode="once", **PRIVATE)
    gr.on([w.change for w in form.inputs], lambda *v: estimate_markdown(names, list(v), mode.on_gpu), form.inputs,
          eta_md, concurrency_limit=None, show_progress="hidden", **PRIVATE)
    demo.load(lambda *v: estimate_markdown(names, list(v), mode.on_gpu), form.inputs, eta_md, **PRIVATE)
    view.change(share_box_value, view, share_box, queue=False, **PRIVATE)
    rename_btn.click(rename, [owner, view, form["name"], form["notes"], xaxis], outputs, **PRIVATE)
    fork_btn.click(fork, view, form.inputs, **PRIVATE)
    command_btn.click(command, [view, *form.inputs], command_md, **PRIVATE)
    overlay_pick.change(overlay, [overlay_pick, xaxis], overlay_plot, **PRIVATE)
    history_df.change(lambda current: gr.Dropdown(choices=run_table.choices(jobs.list_runs()), value=current),
                      overlay_pick, overlay_pick, queue=False, **PRIVATE)
    cancel_btn.click(cancel, [owner, view, xaxis], outputs, **PRIVATE)
    resume_btn.click(resume, [owner, view, xaxis], outputs, **PRIVATE)
    timer.tick(lambda state, x: show_run(state, x, force=False), [view, xaxis], outputs, concurrency_limit=None,
               show_progress="hidden", **PRIVATE)
    xaxis.change(show_run, [view, xaxis], outputs, **PRIVATE)
    refresh_btn.click(history, None, history_df, **PRIVATE)
    history_df.select(open_row, [owner, xaxis], [current, *outputs], **PRIVATE).then(
        show_settings, view, form.inputs, **PRIVATE)
    zip_btn.click(make_zip, view, [zip_file, zip_md], **PRIVATE)
    push_btn.click(push, [view, repo_box, token_box, private_box], push_md, **PRIVATE)
    form["method"].change(method_changed, [form["method"], form["learning_rate"], form["lora_targets"], form["model"]],
                          [form.lora_group, form["learning_rate"], form["lora_targets"]], **PRIVATE)
    form["model"].blur(model_changed, [form["model"], form["method"], form["mlm_probability"]],
                       [form["lora_targets"], form["lora_train_head"], form["mlm_probability"]], **PRIVATE)
    form["model"].blur(chunk_hint, form["model"], form["chunk_size"], **PRIVATE)
    demo.load(open_shared, [owner, xaxis], outputs, **PRIVATE).then(show_settings, view, form.inputs, **PRIVATE)
    for state in (owner, current):
        state.change(restore, [owner, current, view, xaxis], outputs, **PRIVATE).then(
            show_settings, view, form.inputs, **PRIVATE)
    training_api.register()
