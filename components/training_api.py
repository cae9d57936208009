"""Public API of the Train tab, for gradio_client users (stable api_name values).

    from gradio_client import Client
    c = Client("http://127.0.0.1:7860/")
    run = c.predict('{"model": "bundled", "method": "lora", "max_steps": 50,'
                    ' "corpus": {"source": "imdb", "max_docs": 2000}}', api_name="/start_training")
    c.predict(run["run_id"], api_name="/run_status")   # {"state", "step", "total_steps", "latest", ...}
    c.predict(run["run_id"], run["owner_token"], api_name="/cancel_run")  # or the admin token

/start_training takes one JSON object of TrainConfig fields (engine/train_config.py;
missing fields keep their defaults, "corpus" is an object of CorpusConfig fields): one
string is easier to build from a script than thirty positional arguments. Every start
returns an owner_token (only its hash is stored): /cancel_run and /resume_run need it, or
the admin token (MLM_ADMIN_TOKEN on the server); anyone with the id may read the status.
A gradio session means nothing here: plain REST calls have none, and the two-step
/gradio_api/call/ routes get a new one per call.

No `from __future__ import annotations` here: gr.api reads the real type hints.
"""

import json

import gradio as gr

from components.common import user_errors
from engine.data import store
from engine.errors import UserError
from engine.runs import jobs, new_owner_token
from engine.training import NAME_MAX, TrainConfig
from engine.validation import json_object


def parse_config(config_json: str) -> TrainConfig:
    """One JSON object of TrainConfig fields, bounded in size and depth, every field checked.
    The corpus is read only from the store (by id) or the bundled names: never a path from a request."""
    return TrainConfig.from_dict(api_corpus(json_object(config_json, "config_json")))


def api_corpus(raw: dict) -> dict:
    """A config from a request, refused if its corpus names a file on the server (every endpoint that
    starts runs calls this: /start_training, /start_classifier, /payoff)."""
    corpus = raw.get("corpus")
    if isinstance(corpus, dict) and (corpus.get("upload_path") or corpus.get("source") == "upload"):
        # A path from a request would let a caller read any file on the server.
        raise UserError("corpus.upload_path is not accepted from the API: upload the file on the Dataset tab "
                        "(or /dataset_stats with source \"upload\"), then use the stored corpus with "
                        "{\"corpus\": {\"source\": \"stored\", \"corpus_id\": \"ID\"}} (ids: /list_corpora).")
    if isinstance(corpus, dict) and corpus.get("source") == "stored":
        store.get(corpus.get("corpus_id", ""))  # a clear message for an id that is unknown or not an id
    return raw


def _token(value) -> str:
    """An owner or admin token as sent (bounded text; anything else is no token)."""
    return value if isinstance(value, str) and 0 < len(value) <= 200 else ""


def _start(config_json: str, owner_token: str, request: gr.Request | None) -> dict:
    token = _token(owner_token) or new_owner_token()
    # A session only recognises a double click from one Client; it never owns anything (plain REST
    # calls have none, and the two-step /call/ routes get a new one per call).
    session = getattr(request, "session_hash", None)
    run_id = jobs.submit(parse_config(config_json), owner=token, caller=f"session:{session}" if session else None)
    status = jobs.status(run_id)
    return {**{key: status.get(key) for key in ("run_id", "state", "queue_position", "message")},
            "owner_token": token}


@user_errors
def start_training(config_json: str, request: gr.Request) -> dict:
    """Start a training run. config_json: a JSON object of TrainConfig fields, e.g.
    {"model": "bundled", "max_steps": 50, "corpus": {"source": "imdb", "max_docs": 2000}}.
    Returns {"run_id", "state", "queue_position", "message", "owner_token"}: keep owner_token,
    /cancel_run and /resume_run need it."""
    return _start(config_json, "", request)


@user_errors
def start_training_as(config_json: str, owner_token: str, request: gr.Request) -> dict:
    """/start_training under an owner_token an earlier start returned, so that all your runs share
    one owner (one token cancels them all; the per-owner limit on queued runs counts them together)."""
    if not _token(owner_token):
        raise UserError("owner_token must be the token an earlier /start_training returned.")
    return _start(config_json, owner_token, request)


@user_errors
def run_status(run_id: str) -> dict:
    """State, step, total_steps, latest metrics, queue position and log tail of a run."""
    return json.loads(jobs.status_json(run_id))


@user_errors
def cancel_run(run_id: str, admin_token: str = "") -> str:
    """Cancel a run. admin_token: the owner_token its start returned, or the server's admin token
    (the argument keeps its old name so that existing scripts still work)."""
    token = _token(admin_token)
    return jobs.cancel(run_id, owner=token, admin_token=token)


@user_errors
def resume_run(run_id: str, admin_token: str = "") -> str:
    """Resume an interrupted, cancelled or failed run from its last checkpoint (owner_token or admin token)."""
    token = _token(admin_token)
    return jobs.resume(run_id, owner=token, admin_token=token)


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
def rename_run(run_id: str, name: str, notes: str = "", owner_token: str = "") -> dict:
    """Rename a run and set its notes: owner_token is the token its start returned (or the admin token)."""
    token = _token(owner_token)
    return jobs.rename(run_id, name, notes, owner=token, admin_token=token)


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
    from engine.runs import estimate

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
    gr.api(start_training_as, api_name="start_training_as")
    gr.api(run_status, api_name="run_status", concurrency_limit=None)  # a cheap read: never wait in line
    gr.api(cancel_run, api_name="cancel_run", concurrency_limit=None)
    gr.api(resume_run, api_name="resume_run")
