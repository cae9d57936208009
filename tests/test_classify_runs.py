"""Classifier runs through the run registry: the kind in config.json, the worker's dispatch by
kind, payoff experiment records, and bad input refused with nothing left behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.data.corpus import CorpusConfig
from engine.errors import UserError
from engine.run_folder import RunFolder
from engine.runs.experiments import finished_run, list_experiments, payoff_report, resolve_start, start_payoff
from engine.runs.jobs import Jobs
from engine.training.classify.config import ClassifyConfig
from tests.conftest import SMALL_CORPUS, wait_until, write_run

OWNER = "owner-of-the-classifier-tests"
FAKES = "tests.test_classify_runs"
MLM_ID, RUNNING_ID, FAILED_ID, GONE_ID = (f"20260101-12000{i}-{i:016x}" for i in range(4))


def instant_classifier(cfg, run_dir, should_stop=None, progress=None):
    """A stand-in for train_classifier (no resume argument, as the real one): one eval row and a summary."""
    folder = RunFolder(Path(run_dir))
    accuracy = 0.5 + 0.1 * (cfg.model.endswith("final")) + 0.01 * cfg.seed
    row = {"kind": "eval", "step": 1, "accuracy": accuracy, "f1": accuracy - 0.05}
    folder.append_metric(row)
    summary = {"kind": "classify", "steps": 1, "stopped": False, "last_eval": row, "best_eval": row,
               "accuracy": accuracy, "f1": row["f1"]}
    folder.write_summary(summary)
    return summary


def stoppable_classifier(cfg, run_dir, should_stop=None, progress=None):
    """A stand-in that steps until it is told to stop, as train_classifier does (and keeps no checkpoint)."""
    import time

    step = 0
    while step < 600 and not (should_stop and should_stop()):
        step += 1
        if progress:
            progress({"step": step, "total_steps": 600, "epoch": 0})
        time.sleep(0.05)
    summary = {"kind": "classify", "steps": step, "stopped": True}
    RunFolder(Path(run_dir)).write_summary(summary)
    return summary


def test_cancelling_a_classifier_promises_no_checkpoint_and_keeps_its_step(tmp_path, tiny_model_dir):
    jobs = Jobs(tmp_path / "runs", train_target=f"{FAKES}:stoppable_classifier", preflight=False)
    try:
        run_id = jobs.submit(tiny_classify(tiny_model_dir), owner=OWNER)
        wait_until(lambda: jobs.status(run_id).get("step", 0) >= 2, 120)
        message = jobs.cancel(run_id, owner=OWNER)
        assert "stops after the current step" in message and "checkpoint" not in message
        status = final_state(jobs, run_id)
        assert status["state"] == "cancelled" and f"Cancelled at step {status['step']}." in status["message"]
        assert status["step"] >= 2
    finally:
        jobs.close()


def tiny_classify(model: str, **changes) -> ClassifyConfig:
    settings = dict(model=model, corpus=CorpusConfig(**SMALL_CORPUS), train_size=32, test_size=16, max_length=32,
                    batch_size=8, log_every=1)
    return ClassifyConfig(**{**settings, **changes})


def final_state(jobs: Jobs, run_id: str) -> dict:
    wait_until(lambda: jobs.status(run_id)["state"] in ("completed", "failed", "cancelled", "interrupted"), 240)
    return jobs.status(run_id)


@pytest.fixture
def runs_root(tmp_path, tiny_model_dir) -> Path:
    """A runs folder with a finished MLM run (its final/ a copy of the tiny model), a running, a failed one."""
    root = tmp_path / "runs"
    folder = write_run(root, MLM_ID, {"model": tiny_model_dir, "method": "full"}, {"state": "completed"})
    shutil.copytree(tiny_model_dir, folder / "final")
    write_run(root, RUNNING_ID, {"model": tiny_model_dir}, {"state": "running"})
    write_run(root, FAILED_ID, {"model": tiny_model_dir}, {"state": "failed"})
    return root


def test_a_classifier_run_goes_through_the_worker_and_records_its_kind(tmp_path, tiny_model_dir):
    jobs = Jobs(tmp_path / "runs", max_concurrent=1)
    try:
        run_id = jobs.submit(tiny_classify(tiny_model_dir), owner=OWNER)
        status = final_state(jobs, run_id)
        assert status["state"] == "completed", status["log_tail"]
        assert status["kind"] == "classify" and "accuracy" in status["message"]
        folder = jobs.folder(run_id)
        assert folder.config()["kind"] == "classify" and folder.has_final()
        kinds = {r["kind"] for r in folder.metrics()[0]}
        assert kinds == {"train", "eval"} and folder.summary()["last_eval"]["confusion"]
        assert jobs.list_runs()[0]["kind"] == "classify"
        with pytest.raises(UserError, match="only interrupted, cancelled or failed"):
            jobs.resume(run_id, owner=OWNER)
    finally:
        jobs.close()


def test_the_worker_dispatches_by_kind_and_mlm_is_the_default(tmp_path, tiny_model_dir):
    jobs = Jobs(tmp_path / "runs", train_target=f"{FAKES}:instant_classifier", preflight=False)
    try:
        run_id = jobs.submit(tiny_classify(tiny_model_dir, seed=3), owner=OWNER)
        assert final_state(jobs, run_id)["state"] == "completed"
        assert jobs.folder(run_id).summary()["accuracy"] == pytest.approx(0.53)
    finally:
        jobs.close()
    legacy = write_run(tmp_path / "old", "20250101-000000-00000000000000aa", {"model": "bundled"}, {"state": "done"})
    assert RunFolder(legacy).kind() == "mlm" and RunFolder(legacy).history_row()["kind"] == "mlm"


def test_a_resumed_classifier_starts_again_without_the_old_rows(tmp_path, tiny_model_dir):
    jobs = Jobs(tmp_path / "runs", train_target=f"{FAKES}:instant_classifier", preflight=False)
    try:
        run_id = jobs.submit(tiny_classify(tiny_model_dir), owner=OWNER)
        final_state(jobs, run_id)
        jobs.folder(run_id).update_status(state="cancelled")
        assert "from the start (classifier runs keep no checkpoints)" in jobs.resume(run_id, owner=OWNER)
        assert final_state(jobs, run_id)["state"] == "completed"
        assert len(jobs.folder(run_id).metrics()[0]) == 1
    finally:
        jobs.close()


def test_a_payoff_experiment_is_recorded_and_reports_paired_results(runs_root, tiny_model_dir):
    jobs = Jobs(runs_root, train_target=f"{FAKES}:instant_classifier", preflight=False)
    try:
        record = start_payoff(jobs, MLM_ID, 2, tiny_classify("ignored"), full_vs_lora=True, owner=OWNER)
        assert len(record["runs"]) == 8  # 2 seeds x 2 methods x 2 start models, beyond the owner's cap of 3
        wait_until(lambda: payoff_report(record["experiment_id"], runs_root)["done"] == 8, 240)
        report = payoff_report(record["experiment_id"], runs_root)  # read back from disk, as after a reload
        assert report["start_model"] == tiny_model_dir
        assert report["adapted_model"] == f"{report['mlm_run']} (the MLM run's final model)"
        comparisons = {c["comparison"]: c for c in report["comparisons"]["accuracy"]}
        assert set(comparisons) == {"adapted vs start (full)", "adapted vs start (lora)",
                                    "LoRA vs full (start model)", "LoRA vs full (adapted model)"}
        adapted = comparisons["adapted vs start (full)"]
        assert adapted["difference"] == pytest.approx(10.0) and adapted["start"]["mean"] == pytest.approx(51.5)
        assert [r["experiment_id"] for r in list_experiments(runs_root)] == [record["experiment_id"]]
    finally:
        jobs.close()


@pytest.mark.parametrize("seeds", [0, 50])
def test_a_payoff_with_0_or_50_seeds_is_refused_and_queues_nothing(runs_root, seeds):
    jobs = Jobs(runs_root, train_target=f"{FAKES}:instant_classifier", preflight=False, supervise=False)
    before = {f.run_id for f in RunFolder.all(runs_root)}
    with pytest.raises(UserError, match="between 1 and 20 seeds"):
        start_payoff(jobs, MLM_ID, seeds, tiny_classify("x"), owner=OWNER)
    assert {f.run_id for f in RunFolder.all(runs_root)} == before and not list_experiments(runs_root)


@pytest.mark.parametrize("run_id, message", [
    (RUNNING_ID, "is running, not completed with a final model: wait until it completes"),
    (FAILED_ID, "is failed, not completed"),
    (GONE_ID, "does not exist on this server"),
])
def test_a_start_run_must_be_a_finished_mlm_run(runs_root, run_id, message):
    with pytest.raises(UserError, match=message):
        resolve_start(run_id, runs_root)
    assert resolve_start(MLM_ID, runs_root) == str(runs_root / MLM_ID / "final")
    assert resolve_start("bundled", runs_root) == "bundled"


def test_a_classifier_run_is_not_a_start_model(runs_root):
    write_run(runs_root, GONE_ID, {"kind": "classify", "model": "bundled"}, {"state": "completed"})
    with pytest.raises(UserError, match="is a classify run: pick an MLM"):
        finished_run(GONE_ID, "mlm", runs_root)


def _csv(tmp_path: Path, labels: list[str]) -> CorpusConfig:
    lines = ["text,label"] + [f"\"review number {i} of a film\",{label}" for i, label in enumerate(labels)]
    (tmp_path / "data.csv").write_text("\n".join(lines))
    return CorpusConfig(source="upload", upload_path=str(tmp_path / "data.csv"), seed=0)


@pytest.mark.parametrize("labels, message", [
    (["good"] * 40, "one class only"),
    ([str(0.5 + i % 2 * 0.25) for i in range(40)], "decimal numbers"),
    (["good", ""] * 20, "have an empty label"),
])
def test_bad_labels_are_refused_before_a_run_folder_exists(tmp_path, tiny_model_dir, labels, message):
    jobs = Jobs(tmp_path / "runs", supervise=False)
    with pytest.raises(UserError, match=message):
        jobs.submit(tiny_classify(tiny_model_dir, corpus=_csv(tmp_path, labels)), owner=OWNER)
    assert RunFolder.all(jobs.root) == []


def test_a_corpus_without_a_label_column_is_refused(tmp_path, tiny_model_dir):
    (tmp_path / "notes.csv").write_text("text\n" + "\n".join(f"note number {i}" for i in range(20)))
    corpus = CorpusConfig(source="upload", upload_path=str(tmp_path / "notes.csv"), seed=0)
    jobs = Jobs(tmp_path / "runs", supervise=False)
    with pytest.raises(UserError, match="no label column"):
        jobs.submit(tiny_classify(tiny_model_dir, corpus=corpus), owner=OWNER)
    assert RunFolder.all(jobs.root) == []


@pytest.mark.parametrize("max_length, message", [(0, "at least 8 tokens, got 0"),
                                                 (100_000, "above the model's maximum")])
def test_max_length_out_of_range_is_refused(tmp_path, tiny_model_dir, max_length, message):
    jobs = Jobs(tmp_path / "runs", supervise=False)
    with pytest.raises(UserError, match=message):
        jobs.submit(tiny_classify(tiny_model_dir, max_length=max_length), owner=OWNER)
    assert RunFolder.all(jobs.root) == []


def test_ten_thousand_texts_are_refused_naming_the_limit():
    from components.classify_api import classify_with

    with pytest.raises(UserError, match="10,000 texts is more than 1,000 at a time"):
        classify_with(["some-model"], "\n".join(f"text {i}" for i in range(10_000)))


def test_the_same_payoff_experiment_twice_in_a_row_is_refused(runs_root):
    jobs = Jobs(runs_root, train_target=f"{FAKES}:instant_classifier", preflight=False)
    try:
        first = start_payoff(jobs, MLM_ID, 1, tiny_classify("ignored"), owner=OWNER)
        with pytest.raises(UserError, match=f"already started .* {first['experiment_id']}.*not queued twice"):
            start_payoff(jobs, MLM_ID, 1, tiny_classify("ignored"), owner="another-tab")
        other = start_payoff(jobs, MLM_ID, 2, tiny_classify("ignored"), owner="a-third-tab")  # another experiment
        # two experiments, not three (ids order by their second: within one second, either way round)
        assert {e["experiment_id"] for e in list_experiments(runs_root)} == {other["experiment_id"],
                                                                             first["experiment_id"]}
    finally:
        jobs.close()
