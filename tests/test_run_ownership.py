"""Owners that mean something (issue 11): who may cancel or resume a run.

The matrix against the real app (app_url): gradio_client sessions, the plain-HTTP two-step
`/gradio_api/call/...` routes (a new session per call) and the admin token; a gradio session owns
nothing, the owner_token a start returns does. Also: the key owner tokens derive from never
reaches a browser (/config), a symlink in the runs folder is never followed, one owner's queue is capped.
"""

from __future__ import annotations

import json
import os
import urllib.request
import zipfile
from pathlib import Path

import pytest

from engine.errors import UserError
from engine.run_folder import RunFolder
from engine.runs.export import zip_final
from engine.runs.jobs import Jobs
from engine.runs.owners import browser_secret, owner_key
from tests.conftest import APP_ADMIN_TOKEN, tiny_config, tiny_settings, wait_until, write_run

FINAL = ("completed", "failed", "cancelled", "interrupted")


def long_run(model_dir: str) -> str:
    """A run that is still queued or running when the test cancels it."""
    return json.dumps(tiny_settings(model_dir, max_steps=2_000, log_every=50))


def refused(client, *args, api_name: str) -> str:
    with pytest.raises(Exception) as info:
        client.predict(*args, api_name=api_name)
    return str(info.value)


# ---------------------------------------------------------------- plain HTTP, the two-step routes


def call(url: str, api_name: str, *data) -> tuple[str, object]:
    """POST /gradio_api/call/<name>, then read its result stream: (event, payload)."""
    body = json.dumps({"data": list(data)}).encode()
    req = urllib.request.Request(f"{url}gradio_api/call/{api_name}", data=body,
                                 headers={"Content-Type": "application/json"})
    event_id = json.loads(urllib.request.urlopen(req, timeout=30).read())["event_id"]
    stream = urllib.request.urlopen(f"{url}gradio_api/call/{api_name}/{event_id}", timeout=120).read().decode()
    event, payload = "", None
    for line in stream.splitlines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event in ("complete", "error"):
            payload = json.loads(line.split(":", 1)[1].strip() or "null")
    return event, payload


def test_two_step_call_routes_get_an_owner_token_and_need_it(app_url, tiny_model_dir):
    event, payload = call(app_url, "start_training", long_run(tiny_model_dir))
    assert event == "complete", payload
    started = payload[0]
    token, run_id = started["owner_token"], started["run_id"]
    assert len(token) >= 24
    # Without the token (every call is a new session, and sessions own nothing) it is refused.
    for wrong in ("", "somebody-elses-token"):
        event, payload = call(app_url, "cancel_run", run_id, wrong)
        assert event == "error" and "Only whoever started" in json.dumps(payload), payload
    event, payload = call(app_url, "cancel_run", run_id, token)
    assert event == "complete" and "ancel" in payload[0], payload


# ---------------------------------------------------------------- gradio_client sessions, the admin token


def test_gradio_client_ownership_matrix(app_url, tiny_model_dir):
    from gradio_client import Client

    a, b = Client(app_url, verbose=False), Client(app_url, verbose=False)
    started = a.predict(long_run(tiny_model_dir), api_name="/start_training")
    run_id, token = started["run_id"], started["owner_token"]
    assert set(started) >= {"run_id", "state", "queue_position", "message", "owner_token"}

    assert "Only whoever started" in refused(b, run_id, "", api_name="/cancel_run")  # another client
    assert "Only whoever started" in refused(a, run_id, "", api_name="/cancel_run")  # its session alone: no
    assert "Only whoever started" in refused(b, run_id, "guess", api_name="/cancel_run")
    assert "ancel" in b.predict(run_id, token, api_name="/cancel_run")  # the token, from any client
    wait_until(lambda: a.predict(run_id, api_name="/run_status")["state"] in FINAL, 240, 1, what="cancelled")

    assert "Only whoever started" in refused(a, run_id, "", api_name="/resume_run")
    assert "resume" in a.predict(run_id, token, api_name="/resume_run")
    # The admin token (in the same argument) may cancel anyone's run.
    assert "Only whoever started" in refused(b, run_id, "not-the-admin-token", api_name="/cancel_run")
    assert "ancel" in b.predict(run_id, APP_ADMIN_TOKEN, api_name="/cancel_run")
    wait_until(lambda: a.predict(run_id, api_name="/run_status")["state"] in FINAL, 240, 1, what="cancelled again")
    assert "resume" in b.predict(run_id, APP_ADMIN_TOKEN, api_name="/resume_run")
    b.predict(run_id, APP_ADMIN_TOKEN, api_name="/cancel_run")

    # A second start under the same owner: one token controls both.
    again = b.predict(long_run(tiny_model_dir), token, api_name="/start_training_as")
    assert again["owner_token"] == token
    assert "Only whoever started" in refused(a, again["run_id"], "", api_name="/cancel_run")
    assert "ancel" in a.predict(again["run_id"], token, api_name="/cancel_run")


def test_the_owner_key_never_reaches_a_browser(app_url, app_runs_dir):
    """gr.BrowserState's `secret` is sent to every visitor in /config; owner tokens derive from another key."""
    config = urllib.request.urlopen(f"{app_url}config", timeout=30).read().decode()
    key, public = owner_key(app_runs_dir), browser_secret(app_runs_dir)
    assert public in config  # the BrowserState key is public (Gradio's design): that is why it makes no tokens
    assert key and key != public and key not in config


def test_a_browser_sessions_token_is_not_derivable_from_the_public_key(tmp_path):
    from components.training import first_owner_token

    key, public = owner_key(tmp_path), browser_secret(tmp_path)
    assert owner_key(tmp_path) == key  # stable: a browser's token survives a restart with the runs
    assert first_owner_token(key, "session-a") != first_owner_token(public, "session-a")


# ---------------------------------------------------------------- one owner's queue is bounded


class BusySlot:
    def exit_code(self):
        return None

    def kill(self):
        pass


def test_one_owner_may_queue_only_a_few_runs(tmp_path, tiny_model_dir):
    jobs = Jobs(tmp_path / "runs", max_concurrent=1, supervise=False, preflight=False)
    jobs.queue.running["someone-elses-run"] = BusySlot()  # nothing starts: every run waits in the queue
    jobs.max_per_owner = 2
    jobs.submit(tiny_config(tiny_model_dir, seed=1), owner="alice")
    jobs.submit(tiny_config(tiny_model_dir, seed=2), owner="alice")
    with pytest.raises(UserError, match="at most 2"):
        jobs.submit(tiny_config(tiny_model_dir, seed=3), owner="alice")
    jobs.submit(tiny_config(tiny_model_dir, seed=3), owner="bob")  # another owner is not held up
    jobs.close()


# ---------------------------------------------------------------- symlinks are never followed


def test_symlinks_in_the_runs_folder_are_not_followed(tmp_path):
    root = tmp_path / "runs"
    secret = tmp_path / "elsewhere"
    secret.mkdir()
    (secret / "passwords.txt").write_text("root:hunter2\n")
    real = write_run(secret, "20260101-000000-00000000000000aa", {"model": "m"}, {"state": "completed"})
    root.mkdir()
    os.symlink(real, root / real.name)  # a run folder that points elsewhere
    own = write_run(root, "20260101-000000-00000000000000bb", {"model": "m"}, {"state": "completed"})
    os.symlink(secret / "passwords.txt", own / "worker.log")  # a log that points elsewhere
    os.symlink(secret / "passwords.txt", own / "metrics.jsonl")

    assert [f.run_id for f in RunFolder.all(root)] == [own.name]
    assert RunFolder.find(real.name, root) is None
    with pytest.raises(UserError):
        RunFolder.open(real.name, root)
    folder = RunFolder(own)
    assert folder.log_tail() == [] and folder.log_head(5) == [] and folder.metrics() == ([], 0)

    final = own / "final"
    final.mkdir()
    (final / "config.json").write_text("{}")
    os.symlink(secret / "passwords.txt", final / "vocab.txt")
    with pytest.raises(UserError, match="symbolic link"):
        zip_final(own, tmp_path / "out")
    (final / "vocab.txt").unlink()
    path, _ = zip_final(own, tmp_path / "out")
    assert zipfile.ZipFile(path).namelist() == ["config.json"]
    assert Path(path).exists()


def test_the_app_bounds_uploads_and_says_so(app_url):
    from engine.data.uploads import MAX_UPLOAD_MB

    config = json.loads(urllib.request.urlopen(f"{app_url}config", timeout=30).read())
    assert config.get("max_file_size") == MAX_UPLOAD_MB * 1024**2
    assert f"at most {MAX_UPLOAD_MB:,} MB" in json.dumps(config)  # the banner names the limit
