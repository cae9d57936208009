"""The Classify tab's lower half: the inference box and the payoff experiment.

Inference loads finished classifiers in the web process (engine.training.classify.infer keeps
two cached) and labels bounded input. A payoff experiment queues ordinary classifier runs
(engine.runs.experiments) and is read back from its record on every poll, so a reload shows it.
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from components.classify_api import MAX_MODELS, classify_with
from components.common import user_errors
from components.training import PRIVATE, first_owner_token
from engine.compare import MAX_SEEDS, MIN_SEEDS
from engine.errors import UserError
from engine.runs import finished_runs, jobs, list_experiments, payoff_report, start_payoff
from engine.training.classify import MAX_TEXTS, TEXTBOOK_SENTENCES

RUN_COLUMNS = ("run_id", "arm", "method", "seed", "state", "accuracy", "f1")  # engine.runs.experiments' run_states


def classifier_choices() -> list[tuple[str, str]]:
    return [(f"{f.run_id} ({f.config().get('method')}, seed {f.config().get('seed')})", f.run_id)
            for f in finished_runs("classify", jobs.registry().root)]


def mlm_choices() -> list[tuple[str, str]]:
    return [(f"MLM run {f.run_id} ({f.config().get('method')}, {f.config().get('model')})", f.run_id)
            for f in finished_runs("mlm", jobs.registry().root)]


def experiment_choices() -> list[tuple[str, str]]:
    return [(f"{r['experiment_id']} (MLM run {r['mlm_run']}, {r['seeds']} seeds)", r["experiment_id"])
            for r in list_experiments(jobs.registry().root)]


def inference_table(out: dict) -> tuple[pd.DataFrame, str]:
    frame = pd.DataFrame({"text": out["texts"]})
    speeds = []
    for m in out["models"]:
        frame[m["model"]] = [f"{r['label']} ({r['confidence']:.2f})" for r in m["results"]]
        speeds.append(f"`{m['model']}`: {m['samples_per_s']:,.1f} samples/s ({len(out['texts'])} texts "
                      f"in {m['seconds']:.3f} s)")
    return frame, "Batch throughput: " + "; ".join(speeds)


def _comparison_md(c: dict) -> str:
    arms = [k for k in c if isinstance(c[k], dict) and "mean" in c[k]]
    means = ", ".join(f"{a} {c[a]['mean']:.1f} ± {c[a]['std']:.1f}" for a in arms)
    interval = (f", 95% interval [{c['low']:+.1f}, {c['high']:+.1f}]" if c.get("low") is not None else "")
    return (f"- **{c['comparison']}** ({c['n_seeds']} seeds): {means}; paired difference {c['difference']:+.1f} "
            f"points{interval}. **{c['verdict']}**")


def payoff_markdown(report: dict) -> str:
    text = (f"**Experiment `{report['experiment_id']}`**: {report['done']} of {report['total']} runs finished. "
            f"Start model `{report['start_model']}` vs the encoder adapted by MLM run `{report['mlm_run']}`, "
            f"{report['seeds']} seeds" + (", full vs LoRA" if report["full_vs_lora"] else "") + ".\n")
    for metric, comparisons in report["comparisons"].items():
        if comparisons:
            text += f"\n**{metric}** (points):\n" + "\n".join(_comparison_md(c) for c in comparisons) + "\n"
    if report["done"] < report["total"]:
        text += "\nResults fill in as the runs finish (they wait in the queue one after another)."
    return text


def render(demo: gr.Blocks, form, owner, key: str, secret: str, config_from) -> dict:
    """config_from: the Classify tab's form values -> ClassifyConfig (passed in, so this module never
    imports the tab that imports it)."""
    experiment_memory = gr.BrowserState("", storage_key="mlm-studio-payoff", secret=secret)
    gr.Markdown("### Use a classifier")
    with gr.Row():
        models = gr.Dropdown(classifier_choices(), multiselect=True, max_choices=MAX_MODELS, elem_id="cls-infer-models",
                             label=f"Finished classifier runs (up to {MAX_MODELS}, side by side)")
        infer_len = gr.Number(128, precision=0, label="Max length", elem_id="cls-infer-max-length")
    texts = gr.Textbox(lines=6, label=f"Texts, one per line (at most {MAX_TEXTS:,})", elem_id="cls-infer-texts")
    with gr.Row():
        preset_btn = gr.Button("The textbook's six sentences", size="sm", elem_id="cls-infer-preset")
        infer_btn = gr.Button("Classify", variant="primary", elem_id="cls-infer-run")
    infer_table = gr.Dataframe(pd.DataFrame(columns=["text"]), interactive=False, elem_id="cls-infer-table", wrap=True)
    infer_md = gr.Markdown(elem_id="cls-infer-speed")

    gr.Markdown("### Does adaptation pay off?\nClassifiers from the start model and from the adapted encoder, with the "
                "data and settings above, on the same seeds (each seed draws the same examples and head for both); "
                "the paired difference has a 95% t-interval.")
    with gr.Row():
        mlm_run = gr.Dropdown(mlm_choices(), label="Finished MLM run (the adapted encoder)", elem_id="cls-payoff-run")
        seeds = gr.Number(3, precision=0, label=f"Seeds ({MIN_SEEDS} to {MAX_SEEDS})", elem_id="cls-payoff-seeds")
        both = gr.Checkbox(False, label="Also full vs LoRA", elem_id="cls-payoff-both")
        payoff_btn = gr.Button("Start payoff experiment", variant="primary", elem_id="cls-payoff-start")
    experiment = gr.Dropdown(experiment_choices(), label="Experiment", elem_id="cls-payoff-experiment")
    payoff_md = gr.Markdown(elem_id="cls-payoff-result")
    runs_table = gr.Dataframe(pd.DataFrame(columns=list(RUN_COLUMNS)), interactive=False, elem_id="cls-payoff-runs")
    timer = gr.Timer(2.0)
    shown = gr.State("")  # the experiment text last sent: an idle poll sends nothing

    @user_errors
    def infer(chosen, text, max_length):
        return inference_table(classify_with(chosen or [], text or "", max_length))

    @user_errors
    def start(owner_token, run_id, n, full_vs_lora, request: gr.Request, *values):
        owner_token = owner_token or first_owner_token(key, getattr(request, "session_hash", None))
        template = config_from({**dict(zip(form.names, values)), "model": "bundled"})
        record = start_payoff(jobs.registry(), run_id or "", n, template, bool(full_vs_lora), owner=owner_token)
        gr.Info(f"Payoff experiment {record['experiment_id']}: {len(record['runs'])} classifier runs queued.")
        eid = record["experiment_id"]
        return owner_token, eid, gr.Dropdown(choices=experiment_choices(), value=eid), *show(eid)

    def show(eid, shown=None):
        """The experiment's text and run table; skipped when a poll finds them as last shown."""
        if not eid:
            return gr.skip(), gr.skip(), gr.skip()
        try:
            report = payoff_report(eid, jobs.registry().root)
        except UserError:  # a removed or malformed record: show nothing rather than fail a poll
            return gr.skip(), gr.skip(), gr.skip()
        text = payoff_markdown(report)
        if text == shown and report["done"] == report["total"]:
            return gr.skip(), gr.skip(), gr.skip()
        return text, pd.DataFrame(report["run_states"]), text

    def restore(eid, chosen):
        if chosen or not eid:
            return gr.skip()
        return gr.Dropdown(choices=experiment_choices(), value=eid)

    preset_btn.click(lambda: "\n".join(TEXTBOOK_SENTENCES), None, texts, **PRIVATE)
    infer_btn.click(infer, [models, texts, infer_len], [infer_table, infer_md], **PRIVATE)
    payoff_btn.click(start, [owner, mlm_run, seeds, both, *[form[n] for n in form.names]],
                     [owner, experiment_memory, experiment, payoff_md, runs_table, shown], **PRIVATE)
    experiment.change(show, experiment, [payoff_md, runs_table, shown], **PRIVATE)
    timer.tick(show, [experiment, shown], [payoff_md, runs_table, shown], concurrency_limit=None,
               show_progress="hidden", **PRIVATE)
    experiment_memory.change(restore, [experiment_memory, experiment], experiment, **PRIVATE)
    return {"models": models, "mlm_run": mlm_run}
