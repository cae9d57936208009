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
from engine.data import store
from engine.errors import UserError
from engine.runs import jobs
from engine.training.config import NAME_MAX, TrainConfig


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
    corpus = raw.get("corpus")
    if isinstance(corpus, dict) and (corpus.get("upload_path") or corpus.get("source") == "upload"):
        # A path from a request would let a caller read any file on the server.
        raise UserError("corpus.upload_path is not accepted from the API: upload the file on the Dataset tab "
                        "(or /dataset_stats with source \"upload\"), then train on the stored corpus with "
                        "{\"corpus\": {\"source\": \"stored\", \"corpus_id\": \"<id>\"}} (ids: /list_corpora).")
    if isinstance(corpus, dict) and corpus.get("source") == "stored":
        store.get(corpus.get("corpus_id", ""))  # a clear message for an id that is unknown or not an id
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


@user_errors
def list_corpora() -> list:
    """Every corpus a run can use: [{"corpus_id", "name", "rows", "text_column", "label_column", "created",
    "origin"}], bundled first. Train on one with {"corpus": {"source": "stored", "corpus_id": ...}}."""
    keys = ("corpus_id", "name", "rows", "text_column", "label_column", "created", "origin")
    return [{k: c.as_dict()[k] for k in keys} for c in store.list_corpora()]


@user_errors
def rename_corpus(corpus_id: str, name: str) -> dict:
    """Give a stored corpus another display name (at most 120 characters; control characters dropped)."""
    if not (name or "").strip():
        raise UserError("A corpus name cannot be empty.")
    meta = store.rename(corpus_id, name)
    return {"corpus_id": meta.corpus_id, "name": meta.name}


@user_errors
def list_runs() -> list:
    """The runs table: [{"run_id", "name", "corpus", "model", "method", "trainable_params", "state", "step",
    "total_steps", "perplexity_before", "perplexity_after", "duration_s", "estimate_s", "notes", ...}]."""
    return json.loads(json.dumps(jobs.list_runs(), default=str))


@user_errors
def rename_run(run_id: str, name: str, notes: str = "", request: gr.Request = None) -> dict:
    """Rename a run you started from this client, and set its notes."""
    return jobs.rename(run_id, name, notes, owner=session_owner(request))


@user_errors
def fork_run(run_id: str) -> str:
    """A run's settings as the config_json that /start_training takes (named "<name> (fork)")."""
    settings = jobs.registry().folder(run_id).settings()
    settings["name"] = f"{settings.get('name') or run_id} (fork)"[:NAME_MAX]
    return json.dumps(settings)


@user_errors
def run_estimate(config_json: str) -> dict:
    """Before Start: {"steps", "tokens", "seconds", "tokens_per_s", "basis", "explanation"} for a config_json."""
    from engine.hardware import detect
    from engine.runs.eta import estimate

    cfg = parse_config(config_json)
    return estimate(cfg, "cuda" if detect().on_gpu else "cpu", jobs.registry().root).as_dict()


def register() -> None:
    """Declare the endpoints inside the current gr.Blocks."""
    gr.api(list_corpora, api_name="list_corpora", concurrency_limit=None)
    gr.api(rename_corpus, api_name="rename_corpus")
    gr.api(list_runs, api_name="list_runs", concurrency_limit=None)
    gr.api(rename_run, api_name="rename_run")
    gr.api(fork_run, api_name="fork_run", concurrency_limit=None)
    gr.api(run_estimate, api_name="run_estimate")
    gr.api(start_training, api_name="start_training")
    gr.api(run_status, api_name="run_status", concurrency_limit=None)  # a cheap read: never wait in line
    gr.api(cancel_run, api_name="cancel_run", concurrency_limit=None)
    gr.api(resume_run, api_name="resume_run")
