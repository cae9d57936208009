"""Watching one run from the Train tab: attach to a run id, then poll for what is new.

The per-browser view state is a small dict (gr.State): the run id, the byte offset and
identity (inode) of the metrics file already read, the rows read so far, whether this browser owns the
run, and a signature of the last status shown. A poll reads only the rows appended since
the offset; when nothing changed it returns gr.skip() for every output, so an idle tab
costs one stat-and-read of two small files per second and sends nothing. What a poll
returns is a RunPanel: the tab's run widgets by name (components/forms.py maps them).
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from typing import Any

import gradio as gr

from components.forms import skipped
from components.pinned_prompts import timeline_markdown
from components.run_plots import figures, progress_html
from components.run_table import history_frame
from engine.errors import UserError
from engine.run_folder import RESUMABLE_STATES, duration, is_final
from engine.runs import jobs

NO_RUN = "No run yet: fill in the form and press **Start**, or pick a run from the history below."
HISTORY_EVERY_S = 10.0
_now = time.monotonic  # a name of this module's own, for tests to move the clock


@dataclass
class RunPanel:
    """What the Train tab shows of the attached run, one field per widget; a field left at
    gr.skip() leaves its widget as it is (nothing is sent for it)."""

    view: Any = skipped()  # the per-browser view state (gr.State)
    run_md: Any = skipped()
    progress: Any = skipped()
    loss_plot: Any = skipped()
    ppl_plot: Any = skipped()
    lr_plot: Any = skipped()
    tps_plot: Any = skipped()
    log: Any = skipped()
    cancel: Any = skipped()
    resume: Any = skipped()
    history: Any = skipped()
    prompts: Any = skipped()  # components/pinned_prompts.py


def empty_view() -> dict:
    # pinned: opened from a ?run= link, so a reattach to this browser's own last run must not replace it
    return {"run_id": "", "offset": 0, "inode": None, "rows": [], "sig": None, "owner": False, "pinned": False,
            "history_at": 0.0}


def attach(run_id: str, owner: str | None) -> dict:
    """A fresh view of an existing run (UserError for an unknown or malformed id)."""
    registry = jobs.registry()
    folder = registry.folder(run_id)
    return {**empty_view(), "run_id": folder.run_id, "owner": registry.can_control(folder.run_id, owner)}


def new_rows(view: dict) -> tuple[dict, set[str]]:
    """Read rows appended since the last poll; returns the view and which kinds of rows
    ("train", "eval", or "reset") arrived. A resumed run rewrites its metrics (rows after
    its checkpoint are dropped and logged again): a new inode means read it all again."""
    folder = jobs.registry().folder(view["run_id"])
    inode = folder.metrics_identity()
    view = dict(view)
    kinds = set()
    if inode != view["inode"]:
        view.update(offset=0, rows=[], inode=inode)
        kinds.add("reset")
    rows, offset = folder.metrics(view["offset"])
    if rows:
        view.update(rows=view["rows"] + rows, offset=offset)
        kinds.update(r.get("kind", "train") for r in rows)
    return view, kinds


def run_markdown(status: dict, view: dict) -> str:
    config = jobs.registry().folder(status["run_id"]).config()
    name = html.escape(config.get("name") or status["run_id"])
    lines = [f"**{name}** · run `{status['run_id']}` · {status.get('method') or '?'} fine-tuning of "
             f"`{status.get('model') or '?'}`",
             f"**{status.get('state', '?')}**: {html.escape(str(status.get('message') or ''))}"]
    if config.get("notes"):
        lines.append("Notes: " + html.escape(config["notes"]).replace("\n", "<br>"))
    lines.append(estimate_line(status))
    if status.get("queue_position"):
        lines.append(f"Waiting in the queue: position **{status['queue_position']}** (runs start first-in first-out).")
    lines += [f"Note: {n}" for n in status.get("notices") or []]
    if not view.get("owner"):
        lines.append("**Read-only**: this browser did not start this run, so it can watch but not cancel or "
                     "resume it.")
    return "\n\n".join(line for line in lines if line)


def estimate_line(status: dict) -> str:
    """The estimate made at Start, and once the run is over, what it really took."""
    est = status.get("estimate") or {}
    if not est.get("seconds"):
        return ""
    text = f"Estimated at Start: {_clock(est['seconds'])} for {est.get('steps') or 0:,} steps ({est.get('basis')})"
    actual = duration(status)
    if actual is not None and is_final(status):
        text += f"; actual: {_clock(actual)} for {status.get('step') or 0:,} steps ({actual / est['seconds']:.2f}x)"
    return text + "."


def _clock(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def share_url(view: dict, page_url: str) -> str:
    """The full link that opens the attached run read-only (empty with no run)."""
    run_id = (view or {}).get("run_id")
    return f"{page_url or ''}?run={run_id}" if run_id else ""


def _signature(status: dict) -> tuple:
    return (status.get("state"), status.get("step"), status.get("message"), tuple(status.get("log_tail") or [])[-3:],
            status.get("queue_position"), status.get("cancel_requested"))


def poll(view: dict, x: str, force: bool = False) -> RunPanel:
    """The run panel's new values, skipping whatever did not change."""
    if not view or not view.get("run_id"):
        return RunPanel() if not force else blank(view or empty_view())
    try:
        status = jobs.registry().status(view["run_id"], detail=False)
        view, fresh = new_rows(view)
    except UserError as exc:  # the folder vanished (a wiped Space disk)
        return blank(empty_view(), str(exc))
    sig = _signature(status)
    changed_state = view["sig"] is None or sig[0] != view["sig"][0]
    live = status.get("state") in ("running", "queued")
    if not (force or fresh or live or sig != view["sig"]):
        return RunPanel()
    # The history table lists every run on disk, so it is rebuilt on a state change, and
    # while a run trains at most every HISTORY_EVERY_S seconds, for its step column.
    now = _now()
    refresh = force or changed_state or (live and now - view.get("history_at", 0.0) >= HISTORY_EVERY_S)
    view = {**view, "sig": sig, "history_at": now if refresh else view.get("history_at", 0.0)}
    owner, state = view["owner"], status.get("state")
    return RunPanel(
        view=view, run_md=run_markdown(status, view), progress=progress_html(status),
        **_plots(view["rows"], x, {"reset"} if force else fresh, is_final(status)),
        log="\n".join(status.get("log_tail") or []),
        cancel=gr.Button(interactive=owner and state in ("running", "queued") and not status.get("cancel_requested")),
        resume=gr.Button(interactive=owner and state in RESUMABLE_STATES),
        history=history() if refresh else gr.skip(),
    )


def _plots(rows: list[dict], x: str, kinds: set[str], finished: bool = False) -> dict:
    """Only the charts whose rows changed: eval rows feed the perplexity chart, train rows the others."""
    if not kinds:
        return {}
    loss, ppl, lr, tps = figures(rows, x, finished)
    every = "reset" in kinds
    train, evals = every or "train" in kinds, every or "eval" in kinds
    charts = {"loss_plot": loss, "lr_plot": lr, "tps_plot": tps} if train else {}
    if every or "prompts" in kinds:
        charts["prompts"] = timeline_markdown(rows)
    return {**charts, "ppl_plot": ppl} if evals else charts


def blank(view: dict, message: str = "") -> RunPanel:
    """The panel with no run attached (and a message saying why, if any)."""
    loss, ppl, lr, tps = figures([])
    return RunPanel(view=view, run_md=f"**{message}**" if message else NO_RUN, progress=progress_html({}),
                    loss_plot=loss, ppl_plot=ppl, lr_plot=lr, tps_plot=tps, log="",
                    cancel=gr.Button(interactive=False), resume=gr.Button(interactive=False), history=history(),
                    prompts=timeline_markdown([]))


def history():
    return history_frame(jobs.list_runs())

