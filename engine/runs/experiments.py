"""Classifier starts from finished MLM runs, and payoff experiments ("does adaptation pay off?").

A payoff experiment is a set of ordinary classifier runs (engine.compare.payoff.plan_payoff:
the base and the adapted encoder, N seeds, optionally full and LoRA), queued through the same
registry as every run. Its record (engine.run_folder.experiment_path) lists the run ids and
what was compared, so a reload or another browser reads it again; the results are computed
from the runs' summaries each time, never stored twice.
"""

from __future__ import annotations

import re
import time

from engine.compare.payoff import check_seed_count, payoff_from_runs, plan_payoff
from engine.errors import UserError
from engine.run_folder import (
    RunFolder,
    experiment_ids,
    experiment_path,
    new_run_id,
    read_json,
    write_json_atomic,
)
from engine.training.classify.config import ClassifyConfig
from engine.validation import quote

RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{16}$")  # the shape of new_run_id(): never a Hub id
METRICS = ("accuracy", "f1")


def finished_run(run_id: str, kind: str, root=None) -> RunFolder:
    """A completed run of `kind` with its final model, or a UserError saying why it cannot be used."""
    folder = RunFolder.find(run_id, root)
    if folder is None:
        raise UserError(f"Run {quote(run_id)} does not exist on this server (it may have been removed).")
    if folder.kind() != kind:
        what = "an MLM (domain-adaptation) run" if kind == "mlm" else "a classifier run"
        raise UserError(f"Run {folder.run_id} is a {folder.kind()} run: pick {what}.")
    state = folder.status().get("state", "unknown")
    if state != "completed" or not folder.has_final():
        hint = "wait until it completes" if state in ("queued", "running") else "pick a completed run"
        raise UserError(f"Run {folder.run_id} is {state}, not completed with a final model: {hint}.")
    return folder


def resolve_start(model: str, root=None) -> str:
    """A classifier's start model: a run id becomes that finished MLM run's final/ folder (a
    LoRA run's adapter, which the engine merges into its base); anything else is a model reference."""
    model = model.strip() if isinstance(model, str) else model
    if isinstance(model, str) and RUN_ID.match(model):
        return str(finished_run(model, "mlm", root).final_dir)
    return model


def resolve_classifier(model: str, root=None) -> str:
    """For inference: a classifier run id becomes its final/ folder; anything else is a model reference."""
    model = model.strip() if isinstance(model, str) else model
    if isinstance(model, str) and RUN_ID.match(model):
        return str(finished_run(model, "classify", root).final_dir)
    return model


def finished_runs(kind: str, root=None) -> list[RunFolder]:
    """Completed runs of `kind` with a final model, newest first (for the pickers)."""
    done = [f for f in RunFolder.all(root) if f.kind() == kind and f.status().get("state") == "completed"]
    return [f for f in reversed(done) if f.has_final()]


def start_payoff(registry, mlm_run_id: str, seeds, template: ClassifyConfig, full_vs_lora: bool = False,
                 owner: str | None = None) -> dict:
    """Queue every run of a payoff experiment and write its record; returns the record."""
    n = check_seed_count(seeds)
    folder = finished_run(mlm_run_id, "mlm", registry.root)
    _refuse_repeat(registry.root, folder.run_id, n, template, bool(full_vs_lora))
    start_model = str(folder.config().get("model") or "bundled")
    plan = plan_payoff(start_model, str(folder.final_dir), n, full_vs_lora, template)
    registry._check_owner_cap(owner)  # the experiment counts as one start against the owner's cap
    run_ids = [registry.submit(cfg, owner=owner, check_cap=False) for cfg in plan]
    record = {"experiment_id": new_run_id(), "created_at": time.time(), "mlm_run": folder.run_id,
              "start_model": start_model, "adapted_model": str(folder.final_dir), "seeds": n,
              "full_vs_lora": bool(full_vs_lora), "runs": run_ids, "template": template.to_dict()}
    path = experiment_path(registry.root, record["experiment_id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, record)
    return record


REPEAT_S = 30  # an identical experiment this recent is a double click (or a retried request), not a new one


def _refuse_repeat(root, mlm_run: str, seeds: int, template: ClassifyConfig, full_vs_lora: bool) -> None:
    """Refuse to queue the same experiment's runs twice: each one is several full classifier runs."""
    now, wanted = time.time(), template.to_dict()
    for record in list_experiments(root):
        if now - record.get("created_at", 0) > REPEAT_S:
            break  # newest first: the rest are older still
        if (record.get("mlm_run"), record.get("seeds"), record.get("full_vs_lora"), record.get("template")) == (
                mlm_run, seeds, full_vs_lora, wanted):
            raise UserError(f"This experiment was already started {now - record['created_at']:.0f} s ago "
                            f"(experiment {record['experiment_id']}); the second start was ignored so that its "
                            f"{len(record.get('runs', []))} runs are not queued twice. Read it by its id.")


def load_record(experiment_id: str, root=None) -> dict:
    experiment_id = experiment_id.strip() if isinstance(experiment_id, str) else experiment_id
    record = read_json(experiment_path(root, experiment_id)) if isinstance(experiment_id, str) else {}
    if not record:
        raise UserError(f"No payoff experiment {quote(experiment_id)} on this server.")
    return record


def list_experiments(root=None) -> list[dict]:
    """Every experiment's record, newest first."""
    records = (read_json(experiment_path(root, eid)) for eid in reversed(experiment_ids(root)))
    return [r for r in records if r]


def payoff_report(experiment_id: str, root=None) -> dict:
    """The record, each run's state and arm, and (once runs finish) the comparisons per metric."""
    record = load_record(experiment_id, root)
    runs, results = [], []
    for run_id in record["runs"]:
        folder = RunFolder.find(run_id, root)
        config, summary = (folder.config(), folder.summary()) if folder else ({}, {})
        state = folder.status().get("state", "unknown") if folder else "removed"
        arm = "adapted" if config.get("model") == record["adapted_model"] else "start"
        runs.append({"run_id": run_id, "arm": arm, "method": config.get("method"), "seed": config.get("seed"),
                     "state": state, "accuracy": (summary.get("last_eval") or {}).get("accuracy"),
                     "f1": (summary.get("last_eval") or {}).get("f1")})
        if state == "completed" and summary:
            results.append((config, summary))
    comparisons = {m: payoff_from_runs(results, record["start_model"], record["adapted_model"], m) if results else []
                   for m in METRICS}
    done = sum(r["state"] in ("completed", "failed", "cancelled", "interrupted", "removed") for r in runs)
    # The record keeps the adapted encoder's folder (the runs' configs name it); a reply names the run
    # instead: a folder on the server is nobody else's business.
    shown = {**record, "adapted_model": f"{record['mlm_run']} (the MLM run's final model)"}
    return {**shown, "run_states": runs, "done": done, "total": len(runs), "comparisons": comparisons}
