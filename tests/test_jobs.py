"""The run registry with real worker processes (engine.runs.jobs): queue, cancel, kill, resume, restart.

Runs use the tiny BERT (hidden 32, 2 layers) on 200 bundled reviews, chunks of 32 tokens,
a few steps (tests.conftest.tiny_config). A worker is a real `python -m engine.runs.worker`
process; the time limits in `wait_until` are hang guards, not speed assertions.
"""

from __future__ import annotations

import os
import signal
import time
import zipfile
from pathlib import Path

import pytest

from engine.data.corpus import CorpusConfig
from engine.errors import UserError
from engine.run_folder import RunFolder
from engine.runs.export import push_to_hub, zip_final
from engine.runs.jobs import DuplicateSubmission, Jobs
from engine.runs.process import pid_is_worker
from engine.runs.queue import RunQueue
from tests.conftest import tiny_config, wait_until, write_run

OWNER = "owner-token-of-the-test"
FAKES = "tests.test_jobs"  # the worker imports the stand-in train functions below from here


# ---------------------------------------------------------------- stand-ins for engine.training.loop.train


def instant_train(cfg, run_dir, should_stop=None, resume=False, progress=None):
    """Logs one row and finishes: exercises the worker plumbing without loading a model."""
    RunFolder(Path(run_dir)).append_metric({"kind": "train", "step": 1, "epoch": 1.0, "loss": 1.0})
    return {"steps": 1}


def stubborn_train(cfg, run_dir, should_stop=None, resume=False, progress=None):
    """Never looks at should_stop: only the grace-period kill can end it."""
    print("stubborn: training without ever checking for cancel", flush=True)
    if progress:
        progress({"step": 1, "total_steps": 100, "epoch": 0.0})
    time.sleep(300)
    return {"steps": 100}


# ---------------------------------------------------------------- helpers


class BusySlot:
    """A pretend live worker holding a slot."""

    def exit_code(self):
        return None

    def kill(self):
        pass


def state_of(jobs: Jobs, run_id: str) -> str:
    return RunFolder(jobs.root / run_id).status()["state"]


def final_state(jobs: Jobs, run_id: str, timeout: float = 240) -> dict:
    wait_until(lambda: jobs.status(run_id)["state"] in ("completed", "failed", "cancelled", "interrupted"), timeout)
    return jobs.status(run_id)


@pytest.fixture
def jobs(tmp_path):
    registry = Jobs(tmp_path / "runs", max_concurrent=1, cancel_grace_s=30)
    yield registry
    registry.close()
    for handle in list(registry.queue.running.values()):
        handle.kill()


# ---------------------------------------------------------------- real runs


def test_fifo_queue_runs_one_at_a_time_and_both_complete(jobs, tiny_model_dir, tmp_path):
    first = jobs.submit(tiny_config(tiny_model_dir), owner=OWNER)
    second = jobs.submit(tiny_config(tiny_model_dir, seed=7), owner=OWNER)
    assert jobs.status(first)["state"] == "running"
    waiting = jobs.status(second)
    assert waiting["state"] == "queued" and waiting["queue_position"] == 1

    done_first = final_state(jobs, first)
    assert done_first["state"] == "completed", done_first["message"]
    done_second = final_state(jobs, second)
    assert done_second["state"] == "completed", done_second["message"]
    assert done_second["started_at"] >= done_first["finished_at"]  # never both at once

    rows, _ = RunFolder(jobs.root / first).metrics()
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3, 4]
    last_train = [r for r in rows if r["kind"] == "train"][-1]
    assert {"loss", "lr", "tokens_per_s", "samples_per_s", "elapsed_s"} <= set(last_train)
    assert (jobs.root / first / "final" / "config.json").exists()
    assert done_first["latest"]["eval"]["eval_perplexity"] > 0
    assert done_first["log_tail"], "the log tail of a finished run is kept"

    # The final model goes home as a zip (built once, reused), with its size.
    zipped, size = zip_final(jobs.root / first, tmp_path / "exports")
    assert size == zipped.stat().st_size > 0 and zipped.name.endswith("-model.zip")
    assert "config.json" in zipfile.ZipFile(zipped).namelist()
    assert zip_final(jobs.root / first, tmp_path / "exports")[0].stat().st_mtime == zipped.stat().st_mtime

    # A restarted server: a new registry over the same folder lists both runs and leaves them alone.
    restarted = Jobs(jobs.root, supervise=False)
    listed = {row["run_id"]: row for row in restarted.list_runs()}
    assert set(listed) == {first, second}
    assert listed[first]["state"] == "completed" and listed[first]["perplexity_after"] is not None
    assert restarted.queue.waiting == [] and restarted.queue.running == {}


def test_cancel_saves_a_checkpoint_and_resume_continues_to_the_end(jobs, tiny_model_dir):
    run_id = jobs.submit(tiny_config(tiny_model_dir, max_steps=6, eval_every=3), owner=OWNER)
    assert jobs.status(run_id)["state"] == "running"
    # Cancel before training reached step 1: the worker stops right after the first step.
    message = jobs.cancel(run_id, owner=OWNER)
    assert "stops after the current step and saves a checkpoint" in message
    cancelled = final_state(jobs, run_id)
    assert cancelled["state"] == "cancelled", cancelled["message"]
    assert cancelled["resumable"] and cancelled["last_checkpoint_step"] == 1
    assert (jobs.root / run_id / "checkpoints" / "step-1").is_dir()
    with pytest.raises(UserError, match="already finished"):
        jobs.cancel(run_id, owner=OWNER)

    with pytest.raises(UserError, match="Only whoever started"):
        jobs.resume(run_id, owner="someone-else")
    assert "from its checkpoint at step 1" in jobs.resume(run_id, owner=OWNER)
    done = final_state(jobs, run_id)
    assert done["state"] == "completed", done["message"]
    rows, _ = RunFolder(jobs.root / run_id).metrics()
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3, 4, 5, 6]  # contiguous, no repeats
    assert [r["step"] for r in rows if r["kind"] == "eval"] == [0, 3, 6]
    assert (jobs.root / run_id / "final").is_dir()


def test_sigkilled_worker_is_marked_interrupted_within_5_s(jobs, tiny_model_dir):
    run_id = jobs.submit(tiny_config(tiny_model_dir, max_steps=100_000), owner=OWNER)
    folder = jobs.root / run_id
    wait_until(lambda: RunFolder(folder).status().get("step", 0) >= 1)  # training, not still importing
    os.kill(RunFolder(folder).status()["pid"], signal.SIGKILL)
    killed_at = time.time()
    # The supervisor thread (not a status read) must notice: poll the file on disk only.
    wait_until(lambda: RunFolder(folder).status()["state"] == "interrupted", timeout=5, every=0.05)
    noticed = time.time() - killed_at
    status = jobs.status(run_id)
    assert "SIGKILL" in status["message"] and status["resumable"]
    assert any("step" in line for line in status["log_tail"])
    print(f"SIGKILL noticed after {noticed:.2f} s")
    # The server side is unaffected: the registry still answers and accepts runs.
    assert jobs._thread.is_alive()
    assert run_id in [r["run_id"] for r in jobs.list_runs()]


def test_cancel_is_forced_after_the_grace_period(tmp_path):
    jobs = Jobs(tmp_path / "runs", cancel_grace_s=1, train_target=f"{FAKES}:stubborn_train", preflight=False)
    try:
        run_id = jobs.submit(tiny_config("bundled"), owner=OWNER)
        folder = jobs.root / run_id
        wait_until(lambda: RunFolder(folder).status().get("step", 0) >= 1)
        pid = RunFolder(folder).status()["pid"]
        jobs.cancel(run_id, owner=OWNER)
        status = final_state(jobs, run_id, timeout=30)
        assert status["state"] == "cancelled" and "by force" in status["message"]
        wait_until(lambda: not pid_is_worker(pid, run_id), 10)  # killed, not left running
    finally:
        jobs.close()


def test_a_restarted_server_adopts_a_live_worker_and_can_still_cancel_it(tmp_path):
    first = Jobs(tmp_path / "runs", train_target=f"{FAKES}:stubborn_train", preflight=False)
    try:
        run_id = first.submit(tiny_config("bundled"), owner=OWNER)
        folder = first.root / run_id
        wait_until(lambda: RunFolder(folder).status().get("step", 0) >= 1)
        restarted = Jobs(first.root, supervise=False, cancel_grace_s=0)
        assert run_id in restarted.queue.running and state_of(restarted, run_id) == "running"  # not interrupted
        restarted.cancel(run_id, owner=OWNER)
        restarted.check()  # grace period 0: the stubborn worker is killed at once
        assert state_of(restarted, run_id) == "cancelled"
        wait_until(lambda: not pid_is_worker(RunFolder(folder).status()["pid"], run_id), 10)
    finally:
        first.close()


# ---------------------------------------------------------------- bad input and permissions


@pytest.mark.parametrize("changes, message", [
    ({"learning_rate": 0}, "Learning rate must be above 0"),
    ({"learning_rate": -1e-5}, "Learning rate must be above 0"),
    ({"learning_rate": "fast"}, "Learning rate must be a number"),
    ({"batch_size": 0}, "Batch size must be at least 1"),
    ({"method": "lora", "lora_r": 0}, "LoRA rank r must be at least 1"),
    ({"max_steps": 0, "epochs": 0}, "max steps of at least 1"),
    ({"method": "lora", "lora_targets": ["q_lin", "v_lin"]}, "q_lin, v_lin do not exist"),
    ({"corpus": CorpusConfig(source="imdb", max_docs=2, test_fraction=0.5, seed=0), "chunk_size": 512},
     "fewer than one chunk"),
])
def test_bad_configs_are_refused_with_a_clear_message(tmp_path, tiny_model_dir, changes, message):
    jobs = Jobs(tmp_path / "runs", supervise=False)
    with pytest.raises(UserError, match=message):
        jobs.submit(tiny_config(tiny_model_dir, **changes), owner=OWNER)
    assert jobs.list_runs() == []  # nothing half-written on disk


def test_lora_default_targets_pass_preflight(tmp_path, tiny_distilbert_dir):
    from engine.training.preflight import check_runnable

    check_runnable(tiny_config(tiny_distilbert_dir, method="lora", learning_rate=2e-4))  # q_lin,v_lin exist


def test_two_identical_starts_make_one_run(tmp_path):
    jobs = Jobs(tmp_path / "runs", train_target=f"{FAKES}:instant_train", preflight=False)
    try:
        cfg = tiny_config("bundled")
        run_id = jobs.submit(cfg, owner=OWNER)
        with pytest.raises(DuplicateSubmission, match="already started") as info:
            jobs.submit(cfg, owner=OWNER)
        assert info.value.run_id == run_id
        other = jobs.submit(cfg, owner="another-browser")  # someone else's identical run is theirs
        assert other != run_id and len(jobs.list_runs()) == 2
        assert final_state(jobs, run_id)["state"] == "completed"
    finally:
        jobs.close()


def test_cancel_rules(tmp_path, monkeypatch):
    jobs = Jobs(tmp_path / "runs", supervise=False, preflight=False, max_concurrent=1)
    with pytest.raises(UserError, match="No run with id"):
        jobs.cancel("20260101-000000-0000000000000000", owner=OWNER)
    with pytest.raises(UserError, match="not a run id"):
        jobs.cancel("../../etc", owner=OWNER)
    # Fill the only slot with a pretend worker so the next run waits in the queue.
    jobs.queue.running["busy"] = BusySlot()
    run_id = jobs.submit(tiny_config("bundled"), owner=OWNER)
    assert jobs.status(run_id)["queue_position"] == 1
    with pytest.raises(UserError, match="Only whoever started"):
        jobs.cancel(run_id, owner="a-watcher")
    monkeypatch.setenv("MLM_ADMIN_TOKEN", "admin-secret")
    assert "before it started" in jobs.cancel(run_id, admin_token="admin-secret")
    assert state_of(jobs, run_id) == "cancelled" and jobs.queue.waiting == []
    with pytest.raises(UserError, match="already finished"):
        jobs.cancel(run_id, owner=OWNER)
    with pytest.raises(UserError, match="Only whoever started"):
        jobs.resume(run_id, owner="a-watcher")


def test_restarted_registry_marks_orphaned_runs_interrupted(tmp_path):
    root = tmp_path / "runs"
    for run_id, state in (("20260101-000000-00000000000000aa", "running"),
                          ("20260101-000001-00000000000000bb", "queued"),
                          ("20260101-000002-00000000000000cc", "completed")):
        config = {**tiny_config("bundled").to_dict(), "run_id": run_id, "created_at": 0}
        folder = write_run(root, run_id, config, {"state": state, "pid": 2**22 + 12345, "step": 3})
        (folder / "worker.log").write_text("step 3/10 | loss 9.1\n")
    jobs = Jobs(root, supervise=False)
    states = {row["run_id"][-2:]: row["state"] for row in jobs.list_runs()}
    assert states == {"aa": "interrupted", "bb": "interrupted", "cc": "completed"}
    status = jobs.status("20260101-000000-00000000000000aa")
    assert "server restarted" in status["message"] and status["log_tail"] == ["step 3/10 | loss 9.1"]
    assert jobs.queue.waiting == [] and jobs.queue.running == {}  # nothing re-queued by itself


def test_run_queue_is_first_in_first_out():
    queue = RunQueue(max_concurrent=1)
    assert queue.push("a") == 1 and queue.push("b") == 2 and queue.push("c") == 3
    assert queue.next_to_start().run_id == "a"
    queue.running["a"] = BusySlot()
    assert queue.next_to_start() is None  # the only slot is taken
    assert queue.position("b") == 1 and queue.remove("b") and queue.position("c") == 1


def test_export_explains_what_is_missing(tmp_path, monkeypatch):
    folder = tmp_path / "20260101-000000-00000000000000dd"
    folder.mkdir()
    RunFolder(folder).update_status(state="cancelled")
    with pytest.raises(UserError, match="has no final model yet .it is cancelled."):
        zip_final(folder)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="runs offline"):
        push_to_hub(folder, "me/model", "hf_token")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(UserError, match="should look like"):
        push_to_hub(folder, "not a repo", "hf_token")
    with pytest.raises(UserError, match="access token"):
        push_to_hub(folder, "me/model", "")
