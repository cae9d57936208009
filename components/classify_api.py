"""Public API of the Classify tab (stable api_name values), for gradio_client users.

    run = c.predict('{"model": "bundled", "method": "lora", "train_size": 2000,'
                    ' "corpus": {"source": "imdb"}}', api_name="/start_classifier")
    c.predict(run["run_id"], api_name="/run_status")                     # the same as for MLM runs
    c.predict([run["run_id"]], "Great film!\\nDull.", 128, api_name="/classify")
    exp = c.predict("", "<finished MLM run id>", 3, False, '{"train_size": 2000}', "", api_name="/payoff")
    c.predict(exp["experiment_id"], "", 3, False, "", "", api_name="/payoff")  # read it later

"model" in a config may be a finished MLM run's id: the classifier then starts from that run's
encoder (a LoRA run's adapter merged into its base). No `from __future__ import annotations`:
gr.api reads the real type hints.
"""

import gradio as gr

from components.common import user_errors
from components.training_api import _token, api_corpus
from engine.errors import UserError, quote
from engine.models import LOAD_LOCK
from engine.runs import jobs, new_owner_token, payoff_report, resolve_classifier, resolve_start, start_payoff
from engine.training.classify import ClassifyConfig
from engine.validation import json_object

MAX_MODELS = 3  # classifiers side by side in one /classify call


def parse_config(config_json: str, root=None) -> ClassifyConfig:
    """One JSON object of ClassifyConfig fields; a run id as "model" names a finished MLM run."""
    raw = api_corpus(json_object(config_json, "config_json"))  # None is refused, "" means the defaults
    if "model" in raw:
        raw["model"] = resolve_start(raw["model"], root)
    return ClassifyConfig.from_dict(raw)


@user_errors
def start_classifier(config_json: str, request: gr.Request) -> dict:
    """Start a classifier run. config_json: ClassifyConfig fields, e.g. {"model": "bundled",
    "method": "full", "train_size": 2000, "corpus": {"source": "imdb"}}; "model" may be a finished
    MLM run's id. Returns {"run_id", "kind", "state", "queue_position", "message", "owner_token"}."""
    registry = jobs.registry()
    token = new_owner_token()
    session = getattr(request, "session_hash", None)
    run_id = registry.submit(parse_config(config_json, registry.root), owner=token,
                             caller=f"session:{session}" if session else None)
    status = registry.status(run_id, detail=False)
    return {**{k: status.get(k) for k in ("run_id", "kind", "state", "queue_position", "message")},
            "owner_token": token}


def classify_with(models: list, texts, max_length: int = 128) -> dict:
    """Each model's label and confidence per text, with its throughput (shared by the tab)."""
    from engine.training.classify import check_texts, classify_texts

    models = [m for m in (models if isinstance(models, list) else [models]) if isinstance(m, str) and m.strip()]
    if not models:
        raise UserError("Pick at least one classifier: a finished classifier run or a model reference.")
    if len(models) > MAX_MODELS:
        raise UserError(f"Pick at most {MAX_MODELS} classifiers at a time, got {len(models)}.")
    texts = check_texts(texts)  # the limit is named before any model loads
    root = jobs.registry().root
    out = []
    for model in models:
        try:
            with LOAD_LOCK:  # a classifier's from_pretrained must not overlap another tab's load (engine.models)
                result = classify_texts(resolve_classifier(model, root), texts, max_length)
        except UserError as exc:  # which of the (up to 3) models it was, as the caller named it
            raise UserError(f"{quote(model)}: {exc}") from None
        out.append({"model": model, **result})
    return {"texts": texts, "models": out}


@user_errors
def classify(models: list[str], texts: str, max_length: int = 128) -> dict:
    """Label texts (one per line) with up to 3 classifiers: finished classifier run ids or model
    references. Returns {"texts", "models": [{"model", "results": [{"text", "label", "confidence"}],
    "labels", "samples_per_s", "seconds"}]}."""
    return classify_with(models, texts, max_length)


@user_errors
def payoff(experiment_id: str = "", mlm_run: str = "", seeds: int = 3, full_vs_lora: bool = False,
           config_json: str = "", owner_token: str = "") -> dict:
    """Read a payoff experiment (experiment_id), or start one: classifier runs from the start model
    of the finished MLM run `mlm_run` and from its adapted encoder, on `seeds` seeds (1..20), with
    the settings of config_json (ClassifyConfig fields; "model" is ignored), optionally full vs
    LoRA. Returns the experiment with each run's state and, as runs finish, the comparisons."""
    registry = jobs.registry()
    if isinstance(experiment_id, str) and experiment_id.strip():
        return payoff_report(experiment_id, registry.root)
    raw = api_corpus(json_object(config_json or "", "config_json"))
    raw.pop("model", None)
    template = ClassifyConfig.from_dict(raw)
    token = _token(owner_token) or new_owner_token()
    record = start_payoff(registry, mlm_run, seeds, template, bool(full_vs_lora), owner=token)
    return {**payoff_report(record["experiment_id"], registry.root), "owner_token": token}


def register() -> None:
    gr.api(start_classifier, api_name="start_classifier")
    gr.api(classify, api_name="classify")
    gr.api(payoff, api_name="payoff")
