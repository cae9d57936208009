"""engine.run_folder.RunFolder and engine.runs.record, and run folders written before RunFolder existed.

tests/legacy_runs/ holds two run folders written by the code of commit 9a556cf (a worker
run through engine.runs.jobs, tiny model path replaced by "bundled"): a completed run, and a
run cancelled at step 4 whose checkpoints keep only their layout (model/config.json and a
placeholder state.pt; real checkpoints are tens of MB). They must list, open and resume.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pytest

from engine.errors import UserError
from engine.run_folder import RunFolder
from engine.runs.jobs import Jobs
from engine.runs.record import Terminated, run_and_record

LEGACY = Path(__file__).parent / "legacy_runs"
COMPLETED = "20261204-170218-2c53ad586abcda77"
CANCELLED = "20261204-170223-bdb973dbf8bc72e8"
LEGACY_OWNER = "legacy-owner"  # the owner token the legacy runs were submitted with
HERE = "tests.test_run_folder"  # the worker imports resumed_train from here


def resumed_train(cfg, run_dir, should_stop=None, resume=False, progress=None):
    """Stands in for the trainer in a resumed legacy run: checks what it was handed, logs one row."""
    folder = RunFolder(run_dir)
    assert resume and cfg.max_steps == 400 and folder.latest_checkpoint_step() == 4
    folder.append_metric({"kind": "train", "step": 5, "epoch": 0.625, "loss": 10.2})
    return {"steps": 5, "eval_perplexity_before": 30331.4321, "eval_perplexity_after": 30000.0}


@pytest.fixture
def legacy(tmp_path) -> Path:
    root = tmp_path / "runs"
    shutil.copytree(LEGACY, root)
    return root


def wait_for(check, timeout: float = 120, every: float = 0.2):
    """Poll until check() is truthy (a hang guard, not a speed assertion)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := check():
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s")


# ---------------------------------------------------------------- runs written by earlier code


def test_legacy_runs_are_listed_everywhere(legacy):
    from engine.costs.calibrate import finished_runs

    assert [f.run_id for f in RunFolder.all(legacy)] == [COMPLETED, CANCELLED]
    rows = {row["run_id"]: row for row in Jobs(legacy, supervise=False).list_runs()}
    assert list(rows) == [CANCELLED, COMPLETED]  # newest first
    done, stopped = rows[COMPLETED], rows[CANCELLED]
    assert (done["model"], done["method"], done["state"], done["step"], done["total_steps"]) == \
        ("bundled", "full", "completed", 4, 4)
    assert (done["perplexity_before"], done["perplexity_after"]) == (30331.4321, 29264.3981)  # summary.json
    assert done["created_at"] == 1796403738.09332
    assert (stopped["state"], stopped["step"], stopped["total_steps"]) == ("cancelled", 4, 400)
    assert (stopped["perplexity_before"], stopped["perplexity_after"]) == (30331.4321, None)  # metrics.jsonl
    assert [run_id for _, run_id in finished_runs(legacy)] == [COMPLETED]  # the only one with tokens/s


def test_legacy_run_opens_with_its_status_metrics_and_summary(legacy):
    jobs = Jobs(legacy, supervise=False)
    status = jobs.status(COMPLETED)
    stored = json.loads((legacy / COMPLETED / "status.json").read_text())
    assert status["state"] == "completed" and status["message"] == stored["message"]
    assert status["log_tail"] == stored["log_tail"]  # a finished run shows the tail it recorded
    assert status["latest"]["train"]["step"] == 4 and status["latest"]["eval"]["eval_perplexity"] == 29264.3981
    assert status["summary"]["tokens_per_s"] == 11107.7 and status["summary"]["device"] == "cpu"
    assert not status["resumable"] and status["last_checkpoint_step"] is None
    assert RunFolder.open(COMPLETED, legacy).settings()["max_steps"] == 4

    folder = jobs.folder(COMPLETED)
    rows, end = folder.metrics()
    assert [r["step"] for r in rows] == [0, 1, 2, 2, 3, 4, 4]
    assert end == (legacy / COMPLETED / "metrics.jsonl").stat().st_size
    three = sum(len(line) + 1 for line in (legacy / COMPLETED / "metrics.jsonl").read_bytes().splitlines()[:3])
    assert folder.metrics(three) == (rows[3:], end)  # only what came after the offset
    assert folder.metrics(end) == ([], end)


def test_legacy_cancelled_run_resumes_from_its_checkpoint(legacy):
    jobs = Jobs(legacy, train_target=f"{HERE}:resumed_train", poll_s=0.1, preflight=False)
    try:
        status = jobs.status(CANCELLED)
        assert status["resumable"] and status["last_checkpoint_step"] == 4
        assert status["log_tail"][-1] == "Stopped at step 4; resume continues from here."
        assert jobs.can_control(CANCELLED, LEGACY_OWNER) and not jobs.can_control(CANCELLED, "someone-else")
        assert "from its checkpoint at step 4" in jobs.resume(CANCELLED, owner=LEGACY_OWNER)
        assert not (legacy / CANCELLED / "cancel").exists()  # the old cancel flag would stop it at once
        done = wait_for(lambda: (s := jobs.status(CANCELLED))["state"] not in ("queued", "running") and s)
    finally:
        jobs.close()
    assert done["state"] == "completed", done["message"]
    assert done["latest"]["train"]["step"] == 5 and done["created_at"] == 1796403743.7486956


# ---------------------------------------------------------------- RunFolder


def test_open_explains_a_bad_or_unknown_id(legacy):
    with pytest.raises(UserError, match="No run selected"):
        RunFolder.open("  ", legacy)
    with pytest.raises(UserError, match="is not a run id"):
        RunFolder.open("../etc", legacy)
    with pytest.raises(UserError, match="No run with id"):
        RunFolder.open("20990101-000000-0000000000000000", legacy)
    assert RunFolder.find("../etc", legacy) is None and RunFolder.find(f" {COMPLETED} ", legacy).run_id == COMPLETED


def test_only_run_folders_are_listed(legacy):
    (legacy / "20260101-000000-00000000000000ee").mkdir()  # no config.json: not a run (yet)
    (legacy / "not a run").mkdir()
    (legacy / ".browser_secret").write_text("x")
    created = RunFolder.create(legacy, "20270101-000000-00000000000000ff", {"model": "bundled"}, 5.0)
    assert [f.run_id for f in RunFolder.all(legacy)] == [COMPLETED, CANCELLED, created.run_id]
    assert created.config() == {"model": "bundled", "run_id": created.run_id, "created_at": 5.0}
    assert created.settings() == {"model": "bundled"}
    assert RunFolder.all(legacy / "missing") == []


def test_checkpoints_lists_only_complete_ones(legacy):
    folder = RunFolder(legacy / CANCELLED)
    (folder.checkpoints_dir / "step-6" / "model").mkdir(parents=True)  # no state.pt: killed mid-save
    (folder.checkpoints_dir / ".step-8.tmp").mkdir()
    (folder.checkpoints_dir / "step-x").mkdir()
    assert [step for step, _ in folder.checkpoints()] == [2, 4] and folder.latest_checkpoint_step() == 4

    def write(path: Path) -> None:
        RunFolder.checkpoint_model(path).mkdir(parents=True)
        RunFolder.checkpoint_state(path).write_text("state")

    saved = folder.write_checkpoint(10, write)
    assert folder.latest_checkpoint() == saved and saved.name == "step-10"
    assert not any(p.name.endswith(".tmp") and "10" in p.name for p in folder.checkpoints_dir.iterdir())


def saver(name: str):
    """A stand-in for save_pretrained: a folder with one file."""
    def save(path: Path) -> None:
        path.mkdir()
        (path / name).write_text("{}")
    return save


def test_final_model_is_swapped_in_whole(tmp_path):
    folder = RunFolder(tmp_path / "20260101-000000-00000000000000aa")
    folder.path.mkdir()
    assert not folder.has_final()
    folder.write_final(saver("config.json"))
    folder.write_final(saver("adapter_config.json"))
    assert folder.has_final() and sorted(p.name for p in folder.final_dir.iterdir()) == ["adapter_config.json"]
    assert [p.name for p in folder.path.iterdir()] == ["final"]  # no temporary folder left behind


def test_metrics_skip_a_half_written_line_and_restart_after_truncation(tmp_path):
    folder = RunFolder(tmp_path)
    assert folder.metrics() == ([], 0) and folder.metrics_identity() is None
    for step in (1, 2, 3):
        folder.append_metric({"kind": "train", "step": step})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"kind": "train", "st')  # a writer caught mid-line
    rows, end = folder.metrics()
    assert [r["step"] for r in rows] == [1, 2, 3] and folder.metrics(end) == ([], end)
    before = folder.metrics_identity()
    folder.truncate_metrics_after(2)
    assert [r["step"] for r in folder.metrics()[0]] == [1, 2] and folder.metrics_identity() != before


def test_cancel_flag_and_log(tmp_path):
    folder = RunFolder(tmp_path)
    assert not folder.cancel_requested() and folder.cancel_requested_at() is None
    folder.request_cancel()
    assert folder.cancel_requested() and folder.cancel_requested_at() <= time.time()
    folder.clear_cancel()
    assert not folder.cancel_requested()
    folder.log_path.write_text("device cuda:0, mixed precision bf16\n" + "".join(f"line {i}\n" for i in range(30))
                               + "progress 10%\rprogress 100%\n")
    assert folder.log_head(1) == ["device cuda:0, mixed precision bf16"]
    assert folder.log_tail(2) == ["line 29", "progress 100%"]


# ---------------------------------------------------------------- the shared run-and-record path


@pytest.fixture
def run(tmp_path) -> RunFolder:
    folder = RunFolder.create(tmp_path, "20260101-000000-00000000000000aa", {"model": "bundled"}, 0.0)
    folder.update_status(state="queued", finished_at=123.0)
    folder.log_path.write_text("loading\n")
    return folder


def test_record_marks_running_then_completed(run):
    seen = {}

    def train():
        seen.update(run.status())
        return {"steps": 3, "eval_perplexity_before": 100.0, "eval_perplexity_after": 50.0}

    assert run_and_record(run, train, starting="Loading model and data")["steps"] == 3
    assert seen["state"] == "running" and seen["finished_at"] is None and seen["message"] == "Loading model and data"
    status = run.status()
    assert status["state"] == "completed" and status["step"] == 3 and status["finished_at"] >= seen["started_at"]
    assert status["message"] == "Completed 3 steps. Eval perplexity 100.00 before, 50.00 after."
    assert status["log_tail"] == ["loading"]  # worker.log's tail by default


@pytest.mark.parametrize("kind, limit, state, words", [
    ("train", None, "cancelled", "Cancelled at step 2; a checkpoint was saved, so continue with --resume X"),
    ("classify", None, "cancelled", "Cancelled at step 2. continue"),
    ("train", 20.0, "interrupted", "this hardware allows 20 minutes per run"),
])
def test_record_a_stopped_run(run, kind, limit, state, words):
    run_and_record(run, lambda: {"steps": 2, "stopped": True, "kind": kind}, resume_hint="continue with --resume X",
                   time_limit_minutes=lambda: limit, tail=lambda: ["console line"])
    status = run.status()
    assert status["state"] == state and words in status["message"] and status["log_tail"] == ["console line"]
    assert status["step"] == 2  # the step the message names


@pytest.mark.parametrize("error, state, message", [
    (UserError("No text column 'body'."), "failed", "No text column 'body'."),
    (RuntimeError("boom"), "failed", "Training failed: RuntimeError: boom"),
    (Terminated(), "interrupted", "Stopped by SIGTERM"),
    (KeyboardInterrupt(), "interrupted", "Stopped by Ctrl-C"),
])
def test_record_a_failure_then_reraise(run, error, state, message):
    def train():
        raise error

    def on_error(exc):  # runs before the tail is read, as the worker's traceback printing does
        run.log_path.write_text(f"error: {exc!r}\n")

    with pytest.raises(type(error)):
        run_and_record(run, train, on_error=on_error)
    status = run.status()
    assert status["state"] == state and message in status["message"]
    assert status["log_tail"] == [f"error: {error!r}"]


def test_record_writes_nothing_from_a_non_main_process(run):
    def broken():
        raise RuntimeError("x")

    before = (run.path / "status.json").read_text()
    run_and_record(run, lambda: {"steps": 1}, write=False)
    with pytest.raises(RuntimeError):
        run_and_record(run, broken, write=False)
    assert (run.path / "status.json").read_text() == before


def test_cli_records_through_the_same_path(run, monkeypatch):
    """`python -m engine train` in-process, with the trainer stubbed: status and tail come from the console."""
    from engine.cli import train as cli
    from engine.training import loop
    from engine.training.config import TrainConfig

    def fake_train(cfg, run_dir, should_stop=None, resume=False, progress=None, log=None):
        log("eval at step 0: perplexity 9.0")
        progress({"step": 2, "total_steps": 4, "epoch": 0.5})
        return {"steps": 2, "stopped": True}

    monkeypatch.setattr(loop, "train", fake_train)
    handler = signal.getsignal(signal.SIGINT)
    try:
        cli.run(TrainConfig(), run.run_id, run.path, resume=False)
    finally:
        signal.signal(signal.SIGINT, handler)  # the CLI installs its Ctrl-C handler
    status = run.status()
    assert status["state"] == "cancelled" and f"--resume {run.run_id}" in status["message"]
    assert status["log_tail"] == ["eval at step 0: perplexity 9.0"] and status["step"] == 2
