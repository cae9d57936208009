"""Public API of the Train tab, for gradio_client users (stable api_name values).

    from gradio_client import Client
    c = Client("http://127.0.0.1:7860/")
    run = c.predict('{"model": "bundled", "method": "lora", "max_steps": 50,'
                    ' "corpus": {"source": "imdb", "max_docs": 2000}}', api_name="/start_training")
    c.predict(run["run_id"], api_name="/run_status")   # {"state", "step", "total_steps", "latest", ...}
    c.predict(run["run_id"], "", api_name="/cancel_run")

/start_training takes one JSON object of TrainConfig fields (engine/train_config.py;
missing fields keep their defaults, "corpus" is an object of CorpusConfig fields): one
string is easier to build from a script than thirty positional arguments. The calling
client's session owns the run, so the same Client may cancel or resume it; anyone may
read its status. An admin token (MLM_ADMIN_TOKEN on the server) may cancel any run.

No `from __future__ import annotations` here: gr.api reads the real type hints.
"""

import json

import gradio as gr

from components.common import user_errors
from engine.errors import UserError
from engine.runs import jobs
from engine.training.config import TrainConfig


def session_owner(request: gr.Request | None) -> str:
    """An API caller's owner token: its gradio session (one per gradio_client Client)."""
    return "session:" + (getattr(request, "session_hash", None) or "anonymous")


def parse_config(config_json: str) -> TrainConfig:
    try:
        raw = json.loads(config_json or "{}")
    except ValueError as exc:
        raise UserError(f"config_json is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise UserError("config_json must be a JSON object of training settings, like {\"max_steps\": 50}.")
    try:
        return TrainConfig.from_dict(raw)
    except TypeError as exc:  # an unknown key inside "corpus"
        raise UserError(f"Bad corpus settings in config_json: {exc}") from None


@user_errors
def start_training(config_json: str, request: gr.Request) -> dict:
    """Start a training run. config_json: a JSON object of TrainConfig fields, e.g.
    {"model": "bundled", "max_steps": 50, "corpus": {"source": "imdb", "max_docs": 2000}}.
    Returns {"run_id", "state", "queue_position", "message"}."""
    run_id = jobs.submit(parse_config(config_json), owner=session_owner(request))
    status = jobs.status(run_id)
    return {key: status.get(key) for key in ("run_id", "state", "queue_position", "message")}


@user_errors
def run_status(run_id: str) -> dict:
    """State, step, total_steps, latest metrics, queue position and log tail of a run."""
    return json.loads(jobs.status_json(run_id))


@user_errors
def cancel_run(run_id: str, admin_token: str = "", request: gr.Request = None) -> str:
    """Cancel a run you started from this client (or any run, with the admin token)."""
    return jobs.cancel(run_id, owner=session_owner(request), admin_token=admin_token or None)


@user_errors
def resume_run(run_id: str, admin_token: str = "", request: gr.Request = None) -> str:
    """Resume an interrupted, cancelled or failed run from its last checkpoint."""
    return jobs.resume(run_id, owner=session_owner(request), admin_token=admin_token or None)


def register() -> None:
    """Declare the endpoints inside the current gr.Blocks."""
    gr.api(start_training, api_name="start_training")
    gr.api(run_status, api_name="run_status", concurrency_limit=None)  # a cheap read: never wait in line
    gr.api(cancel_run, api_name="cancel_run", concurrency_limit=None)
    gr.api(resume_run, api_name="resume_run")
