"""Stored corpora, run names, the runs table, fork and the estimate through the public API
(gradio_client against the real app), plus the bad input issue 12 lists."""

from __future__ import annotations

import json

import pytest
from gradio_client import handle_file

from engine.data import store, uploads
from engine.errors import UserError
from tests.conftest import TINY_RUN, wait_until

NOTES = "\n".join(f"Pt {i}: dyspnoea on exertion, bilateral basal crackles; started furosemide 40 mg od."
                  for i in range(60))
CSV = "note,dept\n" + "\n".join(
    f'"{line} Echo shows reduced ejection fraction; NT-proBNP raised.",{"cardio" if i % 2 else "resp"}'
    for i, line in enumerate(NOTES.splitlines()))


def api_error(client, *args, api_name: str) -> str:
    with pytest.raises(Exception) as info:
        client.predict(*args, api_name=api_name)
    return str(info.value)


@pytest.fixture(scope="module")
def clinical(client, tmp_path_factory) -> dict:
    """The clinical notes analysed once through /dataset_stats: the stored corpus's summary."""
    path = tmp_path_factory.mktemp("upload") / "ward-notes.csv"
    path.write_text(CSV)
    return client.predict("upload", "", handle_file(str(path)), "note", "bundled", 32, 0, "", "dept",
                          api_name="/dataset_stats")


def listed(client) -> dict:
    return {c["corpus_id"]: c for c in client.predict(api_name="/list_corpora")}


def test_an_analysed_upload_becomes_a_stored_corpus(client, clinical):
    corpus = listed(client)[clinical["corpus_id"]]
    assert clinical["corpus"] == "ward-notes.csv"
    assert (corpus["name"], corpus["rows"], corpus["text_column"], corpus["label_column"]) == (
        "ward-notes.csv", 60, "note", "dept")
    assert list(listed(client))[:2] == ["imdb", "rotten_tomatoes"]
    # analysing it again by id reads the stored copy
    again = client.predict("stored", "", None, "", "bundled", 32, 0, clinical["corpus_id"], "",
                           api_name="/dataset_stats")
    assert again["corpus_id"] == clinical["corpus_id"] and again["split_sizes"] == clinical["split_sizes"]


def test_renaming_cleans_long_or_html_names_and_keeps_the_corpus(client, clinical):
    cid = clinical["corpus_id"]
    kept = client.predict(cid, "<img src=x onerror=alert(1)>" + "x" * 10_000, api_name="/rename_corpus")
    assert len(kept["name"]) == store.NAME_MAX and kept["name"].startswith("<img src=x")
    assert "cannot be empty" in api_error(client, cid, "  ", api_name="/rename_corpus")
    kept = client.predict(cid, "Ward notes\x00\x1b[31m (cardiology)", api_name="/rename_corpus")
    assert kept["name"] == "Ward notes [31m (cardiology)"  # control characters become spaces
    assert listed(client)[cid]["rows"] == 60  # renaming lost nothing


@pytest.mark.parametrize("corpus_id, message", [
    ("0123456789abcdef", "No stored corpus '0123456789abcdef'"),
    ("../../etc/passwd", "is not a corpus id"),
    ("/etc", "is not a corpus id"),
])
def test_a_bad_corpus_id_gets_a_message(client, tiny_model_dir, corpus_id, message):
    assert message in api_error(client, "stored", "", None, "", "bundled", 32, 0, corpus_id, "",
                                api_name="/dataset_stats")
    config = json.dumps({"model": tiny_model_dir, "corpus": {"source": "stored", "corpus_id": corpus_id}})
    assert message in api_error(client, config, api_name="/start_training")


@pytest.mark.parametrize("api_name", ["/start_training", "/start_classifier", "/payoff"])
def test_an_upload_path_from_the_api_is_refused(client, tiny_model_dir, api_name):
    """Every endpoint that starts runs: a path from a request would read any file on the server."""
    config = json.dumps({"model": tiny_model_dir, "corpus": {"source": "upload", "upload_path": "/etc/passwd",
                                                             "label_column": "label"}})
    args = ("", "20260101-000000-0123456789abcdef", 1, False, config, "") if api_name == "/payoff" else (config,)
    message = api_error(client, *args, api_name=api_name)
    assert "upload_path is not accepted from the API" in message and "/list_corpora" in message


@pytest.mark.parametrize("hub_id", ["/etc", "../../etc", "tests", "a/b/c", "x..y"])
def test_a_path_as_a_hub_dataset_id_is_refused(client, tiny_model_dir, hub_id):
    """load_dataset also opens local folders ('tests' is one beside app.py): only Hub ids are taken."""
    expected = "is not a Hub dataset id"
    assert expected in api_error(client, "hub", hub_id, None, "text", "bundled", 32, 0, "", "",
                                 api_name="/dataset_stats")
    config = json.dumps({"model": tiny_model_dir, "corpus": {"source": "hub", "hub_id": hub_id}})
    assert expected in api_error(client, config, api_name="/start_training")


def test_a_classifier_is_not_started_by_a_missing_config(client):
    assert "config_json must be a JSON object as text, got None" in api_error(client, None,
                                                                              api_name="/start_classifier")


def test_an_upload_over_the_limit_is_refused_and_nothing_is_lost(tmp_path, monkeypatch):
    monkeypatch.setenv("MLM_CORPORA_DIR", str(tmp_path / "corpora"))
    small = tmp_path / "small.csv"
    small.write_text(CSV)
    kept = store.store_upload(str(small), "note", "dept")
    big = tmp_path / "big.csv"
    big.write_text(CSV * 40)  # about 0.3 MB
    monkeypatch.setattr(uploads, "MAX_UPLOAD_MB", 0.1)  # read from MLM_MAX_UPLOAD_MB at import
    with pytest.raises(UserError, match=r"big.csv is 0.3 MB; this server reads uploads of at most 0.1 MB"):
        store.store_upload(str(big), "note", "dept")
    assert [c.corpus_id for c in store.list_corpora()][2:] == [kept.corpus_id]


def test_a_named_run_on_the_stored_corpus_is_estimated_listed_and_forkable(client, clinical, tiny_model_dir):
    settings = {"model": tiny_model_dir, **TINY_RUN, "chunk_size": 32, "train_size": 0, "test_size": 8,
                "corpus": {"source": "stored", "corpus_id": clinical["corpus_id"]},
                "name": "<b>cardio</b> tiny\x07 run", "notes": "first try\x1b\nwith furosemide notes\x00"}
    eta = client.predict(json.dumps(settings), api_name="/run_estimate")
    assert eta["steps"] == TINY_RUN["max_steps"] and eta["tokens"] == 4 * 8 * 32 and eta["basis"]
    run = client.predict(json.dumps(settings), api_name="/start_training")
    run_id = run["run_id"]
    wait_until(lambda: client.predict(run_id, api_name="/run_status")["state"] == "completed", timeout=240,
               what="the tiny run on the clinical notes")
    status = client.predict(run_id, api_name="/run_status")
    assert status["estimate"]["steps"] == TINY_RUN["max_steps"]
    row = next(r for r in client.predict(api_name="/list_runs") if r["run_id"] == run_id)
    assert row["name"] == "<b>cardio</b> tiny run" and row["notes"] == "first try\nwith furosemide notes"
    assert row["corpus"] == clinical["corpus_id"] and row["trainable_params"] > 0
    assert row["duration_s"] > 0 and row["perplexity_after"] is not None
    fork = json.loads(client.predict(run_id, api_name="/fork_run"))
    assert fork["name"] == "<b>cardio</b> tiny run (fork)" and fork["corpus"]["corpus_id"] == clinical["corpus_id"]
    assert "run_id" not in fork and fork["max_steps"] == TINY_RUN["max_steps"]
    # only its owner token renames it
    renamed = client.predict(run_id, "cardio v2", "dose\x00 changed", run["owner_token"], api_name="/rename_run")
    assert renamed == {"run_id": run_id, "name": "cardio v2", "notes": "dose changed"}
    assert "Name is too long: 10,000 characters" in api_error(client, run_id, "n" * 10_000, "", run["owner_token"],
                                                              api_name="/rename_run")
    assert "rename" in api_error(client, run_id, "mine", "", "not-the-token", api_name="/rename_run")
    assert next(r for r in client.predict(api_name="/list_runs") if r["run_id"] == run_id)["name"] == "cardio v2"


def test_a_name_of_10000_characters_is_refused_and_nothing_is_started(client, tiny_model_dir):
    before = len(client.predict(api_name="/list_runs"))
    settings = {"model": tiny_model_dir, **TINY_RUN, "name": "<script>" + "x" * 10_000}
    assert "Name is too long" in api_error(client, json.dumps(settings), api_name="/start_training")
    assert len(client.predict(api_name="/list_runs")) == before


def test_a_run_without_a_name_gets_one_from_model_method_and_corpus(client, tiny_model_dir):
    settings = {"model": tiny_model_dir, **TINY_RUN, "max_steps": 1,
                "corpus": {"source": "rotten_tomatoes", "max_docs": 200}}
    run_id = client.predict(json.dumps(settings), api_name="/start_training")["run_id"]
    row = next(r for r in client.predict(api_name="/list_runs") if r["run_id"] == run_id)
    assert row["name"].startswith(f"{tiny_model_dir.rstrip('/').rsplit('/', 1)[-1]} · full · rotten_tomatoes · ")
