"""The Classify tab's public API through gradio_client: /start_classifier -> /run_status -> /classify,
and the API's refusals (10,000 texts, a payoff with 0 or 50 seeds, a start run that is not finished)."""

from __future__ import annotations

import json

import pytest
from gradio_client.exceptions import AppError

from tests.conftest import SMALL_CORPUS, wait_until

TEXTBOOK = "This is the best movie I have ever seen!\nBoring and predictable throughout."


def tiny_classifier_json(model: str, **changes) -> str:
    return json.dumps({"model": model, "corpus": SMALL_CORPUS, "train_size": 32, "test_size": 16, "max_length": 32,
                       "batch_size": 8, "log_every": 1, **changes})


def test_start_watch_and_use_a_classifier(client, tiny_model_dir):
    run = client.predict(tiny_classifier_json(tiny_model_dir), api_name="/start_classifier")
    assert run["kind"] == "classify" and run["owner_token"]
    status = wait_until(lambda: (s := client.predict(run["run_id"], api_name="/run_status"))["state"]
                        in ("completed", "failed", "cancelled", "interrupted") and s, 240, 1.0, "the run finishing")
    assert status["state"] == "completed", status["log_tail"]
    assert status["kind"] == "classify" and {"accuracy", "f1", "confusion"} <= set(status["latest"]["eval"])
    assert status["summary"]["best_eval"] and status["summary"]["trainable_params"] > 0
    out = client.predict([run["run_id"]], TEXTBOOK, 32, api_name="/classify")
    results = out["models"][0]["results"]
    assert [r["label"] in ("negative", "positive") for r in results] == [True, True]
    assert all(0.5 <= r["confidence"] <= 1 for r in results) and out["models"][0]["samples_per_s"] > 0


def test_the_api_refuses_bad_input_with_a_clear_message(client):
    with pytest.raises(AppError, match="10,000 texts is more than 1,000"):
        client.predict(["bundled"], "\n".join(f"t{i}" for i in range(10_000)), 128, api_name="/classify")
    for seeds in (0, 50):
        with pytest.raises(AppError, match="between 1 and 20 seeds"):
            client.predict("", "20260101-120000-00000000000000ff", seeds, False, "{}", "", api_name="/payoff")
    with pytest.raises(AppError, match="does not exist on this server"):
        client.predict(tiny_classifier_json("20260101-120000-00000000000000ff"), api_name="/start_classifier")
    with pytest.raises(AppError, match="at least 8 tokens, got 0"):
        client.predict(tiny_classifier_json("bundled", max_length=0), api_name="/start_classifier")
