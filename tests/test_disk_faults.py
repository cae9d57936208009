"""Disk faults never strand a run or take the app down (issue 11).

A real small filesystem (a tmpfs mounted for the test; skipped with the reason when mounting is not
permitted) fills up or turns read-only under the runs folder; injected OSErrors cover the writers
one by one. Stand-in train functions run in real worker processes (`--train tests.test_disk_faults:...`).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.errors import UserError
from engine.run_folder import RunFolder, write_json_atomic
from engine.runs.jobs import Jobs
from tests.conftest import ROOT, free_port, tiny_config, wait_until, write_run

OWNER = "disk-fault-owner"
HERE = "tests.test_disk_faults"


# ---------------------------------------------------------------- a small filesystem


def _mount(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or 'not root'}): "
                    f"the small-filesystem checks need it; the injected-error tests still run")


def _remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


@pytest.fixture
def small_fs(tmp_path):
    """A 4 MB tmpfs; unmounted afterwards."""
    mnt = tmp_path / "small"
    _mount(mnt, "4m")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(root: Path) -> Path:
    """Fill the filesystem under `root` until it says ENOSPC; returns the filler to delete later."""
    filler = root / "filler"
    with open(filler, "wb", buffering=0) as f:  # unbuffered: nothing is left to fail at close
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def leftovers(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*") if ".tmp" in p.name or ".old" in p.name]


# ---------------------------------------------------------------- stand-in train functions (worker side)


def disk_filling_train(cfg, run_dir, should_stop=None, resume=False, progress=None):
    """Fills the runs folder's disk, then tries to write a checkpoint: as a run on a full disk would."""
    folder = RunFolder(Path(run_dir))
    if progress:
        progress({"step": 3, "total_steps": 10, "epoch": 0.1})
    fill(folder.path.parent)
    folder.write_checkpoint(3, lambda p: (p.mkdir(), (p / "model").mkdir(), (p / "state.pt").write_bytes(b"x" * 8192)))
    return {"steps": 10}


def quick_train(cfg, run_dir, should_stop=None, resume=False, progress=None):
    RunFolder(Path(run_dir)).append_metric({"kind": "train", "step": 1, "loss": 1.0})
    return {"steps": 1}


# ---------------------------------------------------------------- injected errors


def test_write_json_atomic_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "status.json"
    write_json_atomic(target, {"state": "running"})

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError):
        write_json_atomic(target, {"state": "failed"})
    assert json.loads(target.read_text()) == {"state": "running"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]


def test_a_failed_checkpoint_or_final_write_keeps_the_previous_one_and_no_partial_folder(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()

    def good(p: Path) -> None:
        (p / "model").mkdir(parents=True)
        (p / "model" / "config.json").write_text("{}")
        (p / "state.pt").write_text("ok")

    def dies_half_way(p: Path) -> None:
        (p / "model").mkdir(parents=True)
        (p / "model" / "weights").write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    folder.write_checkpoint(2, good)
    folder.write_final(good)
    with pytest.raises(OSError):
        folder.write_checkpoint(4, dies_half_way)
    with pytest.raises(OSError):
        folder.write_final(dies_half_way)
    assert folder.latest_checkpoint_step() == 2
    assert (folder.final_dir / "model" / "config.json").exists()
    assert leftovers(folder.path) == []


def test_a_dead_worker_whose_status_cannot_be_written_is_retried_until_it_is(tmp_path, monkeypatch):
    """The supervisor keeps the final status of a worker that died while the disk refused writes."""
    monkeypatch.setenv("MLM_ADMIN_TOKEN", "admin")
    jobs = Jobs(tmp_path / "runs", max_concurrent=1, supervise=False, preflight=False)
    folder = RunFolder.create(jobs.root, "20260101-000000-00000000000000aa", {}, time.time())
    folder.update_status(state="running", step=7)

    class Dead:
        def exit_code(self):
            return 74

        def kill(self):
            pass

    jobs.queue.running[folder.run_id] = Dead()
    real = RunFolder.update_status

    def refuse(self, **changes):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    monkeypatch.setattr(RunFolder, "update_status", refuse)
    jobs.check()
    assert folder.status()["state"] == "running"  # nothing could be written...
    shown = jobs.status(folder.run_id)
    assert shown["state"] in ("failed", "interrupted") and "step 7" in shown["message"]  # ...but it is known
    with pytest.raises(UserError, match="already finished"):  # not "Cancelling..." forever
        jobs.cancel(folder.run_id, admin_token="admin")
    with pytest.raises(UserError, match="cannot be written yet") as err:
        jobs.resume(folder.run_id, admin_token="admin")
    assert str(tmp_path) not in str(err.value)
    monkeypatch.setattr(RunFolder, "update_status", real)
    jobs.check()
    assert folder.status()["state"] in ("failed", "interrupted")
    assert jobs.unrecorded() == {}
    assert leftovers(folder.path) == []
    jobs.close()


def test_a_start_that_cannot_write_says_why_plainly_and_leaves_no_folder(tmp_path, monkeypatch, tiny_model_dir):
    jobs = Jobs(tmp_path / "runs", max_concurrent=1, supervise=False, preflight=False)

    def refuse(self, **changes):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path / "status.json"))

    monkeypatch.setattr(RunFolder, "update_status", refuse)
    with pytest.raises(UserError) as err:
        jobs.submit(tiny_config(tiny_model_dir), owner=OWNER)
    assert "runs folder is full" in str(err.value) and str(tmp_path) not in str(err.value)
    assert "Errno" not in str(err.value)
    assert RunFolder.all(jobs.root) == [] and [p.name for p in jobs.root.iterdir() if not p.name.startswith(".")] == []
    jobs.close()


# ---------------------------------------------------------------- a real small filesystem


def test_a_run_that_fills_the_disk_is_marked_failed_once_space_is_freed(small_fs, tiny_model_dir):
    jobs = Jobs(small_fs, max_concurrent=1, cancel_grace_s=30, train_target=f"{HERE}:disk_filling_train",
                preflight=False, poll_s=0.2)
    try:
        run_id = jobs.submit(tiny_config(tiny_model_dir), owner=OWNER)
        folder = RunFolder(small_fs / run_id)
        wait_until(lambda: run_id not in jobs.queue.running, 120, what="the worker to die on the full disk")
        shown = jobs.status(run_id)
        assert shown["state"] == "failed" and "full" in shown["message"], shown
        assert str(small_fs) not in shown["message"] and "Errno" not in shown["message"]
        with pytest.raises(UserError, match="cannot be written yet|full"):
            jobs.resume(run_id, owner=OWNER)
        (small_fs / "filler").unlink()  # space freed: the status reaches the disk by itself
        wait_until(lambda: folder.status().get("state") == "failed", 30, what="the final status on disk")
        assert "full" in folder.status()["message"]
        assert leftovers(small_fs) == [] and folder.latest_checkpoint() is None
        assert "resumes" in jobs.resume(run_id, owner=OWNER)  # Resume is no longer refused
    finally:
        jobs.close()
        for handle in list(jobs.queue.running.values()):
            handle.kill()


def test_starting_a_run_on_a_full_or_read_only_runs_folder(small_fs, tiny_model_dir):
    jobs = Jobs(small_fs, max_concurrent=1, train_target=f"{HERE}:quick_train", preflight=False, supervise=False)
    filler = fill(small_fs)
    with pytest.raises(UserError, match="runs folder is full: free space or set MLM_RUNS_DIR") as err:
        jobs.submit(tiny_config(tiny_model_dir), owner=OWNER)
    assert str(small_fs) not in str(err.value)
    filler.unlink()
    _remount(small_fs, "ro")
    with pytest.raises(UserError, match="read-only") as err:
        jobs.submit(tiny_config(tiny_model_dir), owner=OWNER)
    assert str(small_fs) not in str(err.value)
    _remount(small_fs, "rw")
    assert RunFolder.all(small_fs) == [] and leftovers(small_fs) == []
    jobs.close()


def test_a_registry_on_a_read_only_runs_folder_starts_and_records_once_writable(small_fs):
    run_id = "20260101-000000-00000000000000bb"
    write_run(small_fs, run_id, {"model": "m"}, {"state": "running", "pid": 999_999_999, "step": 4})
    _remount(small_fs, "ro")
    jobs = Jobs(small_fs, max_concurrent=1, supervise=False, preflight=False)  # must not raise
    assert jobs.status(run_id)["state"] == "interrupted"  # the true state, though not on disk yet
    assert RunFolder(small_fs / run_id).status()["state"] == "running"
    _remount(small_fs, "rw")
    jobs.check()
    assert RunFolder(small_fs / run_id).status()["state"] == "interrupted"
    jobs.close()


def test_the_app_starts_on_a_read_only_runs_folder_and_serves_its_runs(small_fs, tmp_path):
    """A restart of the whole server on a read-only runs folder: it serves, says so, and shows runs."""
    from gradio_client import Client

    run_id = "20260101-000000-00000000000000cc"
    write_run(small_fs, run_id, {"model": "m", "method": "full"}, {"state": "completed", "message": "Done."})
    write_run(small_fs, "20260101-000000-00000000000000dd", {"model": "m"}, {"state": "running", "pid": 999_999_999})
    _remount(small_fs, "ro")
    port = free_port()
    log = open(tmp_path / "app.log", "w")
    env = dict(os.environ, PORT=str(port), MLM_RUNS_DIR=str(small_fs))
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        import urllib.request

        def up():
            assert proc.poll() is None, (tmp_path / "app.log").read_text()[-3000:]
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2).read().decode()
            except OSError:
                return None

        config = wait_until(up, 180, 0.5, what="the app serving")
        assert "Runs are read-only" in config
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        assert client.predict(run_id, api_name="/run_status")["state"] == "completed"
        assert client.predict("20260101-000000-00000000000000dd", api_name="/run_status")["state"] == "interrupted"
        with pytest.raises(Exception, match="read-only") as err:
            client.predict(json.dumps({"model": "bundled", "max_steps": 1}), api_name="/start_training")
        assert str(small_fs) not in str(err.value)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        _remount(small_fs, "rw")


def test_a_metric_row_cut_by_a_full_disk_leaves_no_half_line(small_fs):
    folder = RunFolder(small_fs / "20260101-000000-00000000000000ee")
    folder.path.mkdir()
    folder.append_metric({"kind": "train", "step": 1, "loss": 1.0})
    filler = fill(small_fs)
    with open(filler, "r+b") as f:  # give back two pages: room for part of the next row, not all of it
        f.truncate(filler.stat().st_size - 8192)
    with pytest.raises(OSError):
        folder.append_metric({"kind": "train", "step": 2, "note": "x" * 100_000})
    assert folder._metrics.read_bytes().endswith(b"}\n")
    assert [r["step"] for r in folder.metrics()[0]] == [1]
