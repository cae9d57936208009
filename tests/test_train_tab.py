"""Train tab: its public API through gradio_client against the real app, and the tab's
pure parts (form -> TrainConfig, polling by byte offset, figures, progress/ETA)."""

from __future__ import annotations

import json
import time

import gradio as gr
import pytest

from components import run_plots, training_view
from components.training_form import config_from_values, method_changed
from engine.errors import UserError
from engine.run_folder import RunFolder
from engine.runs import jobs
from engine.training.config import TrainConfig
from tests.conftest import tiny_settings, wait_until, write_run


def tiny_json(model_dir: str, **changes) -> str:
    return json.dumps(tiny_settings(model_dir, **{"max_steps": 3, **changes}))


def api_error(client, *args, api_name: str) -> str:
    with pytest.raises(Exception) as info:
        client.predict(*args, api_name=api_name)
    return str(info.value)


# ---------------------------------------------------------------- the public API (real app)


@pytest.mark.parametrize("lr, message", [(0, "Learning rate must be above 0"), (-1, "Learning rate must be above 0"),
                                         ("fast", "Learning rate must be a number")])
def test_start_training_refuses_a_bad_learning_rate(client, tiny_model_dir, lr, message):
    assert message in api_error(client, tiny_json(tiny_model_dir, learning_rate=lr), api_name="/start_training")


def test_start_training_explains_bad_json_and_bad_fields(client, tiny_model_dir):
    assert "not valid JSON" in api_error(client, "{max_steps: 3", api_name="/start_training")
    bad_batch = tiny_json(tiny_model_dir, batch_size=0)
    assert "Batch size must be at least 1" in api_error(client, bad_batch, api_name="/start_training")
    assert "Unknown training setting" in api_error(client, tiny_json(tiny_model_dir, lr=1), api_name="/start_training")


def test_a_good_run_completes_and_unknown_ids_are_explained(client, tiny_model_dir):
    started = client.predict(tiny_json(tiny_model_dir), api_name="/start_training")
    run_id = started["run_id"]
    assert started["state"] in ("queued", "running")
    # The same client pressing Start twice within seconds does not start a second run.
    assert "already started" in api_error(client, tiny_json(tiny_model_dir), api_name="/start_training")

    def finished():
        status = client.predict(run_id, api_name="/run_status")
        return status if status["state"] not in ("queued", "running") else None

    status = wait_until(finished, timeout=300, every=1, what="the run finishing")  # a hang guard
    assert status["state"] == "completed", status["message"]
    assert status["step"] == status["total_steps"] == 3
    assert status["latest"]["train"]["step"] == 3 and status["latest"]["eval"]["eval_perplexity"] > 0
    assert status["log_tail"]

    assert "already finished" in api_error(client, run_id, started["owner_token"], api_name="/cancel_run")
    unknown = "20260101-000000-0123456789abcdef"
    assert f"No run with id {unknown!r}" in api_error(client, unknown, "", api_name="/cancel_run")
    assert "No run with id" in api_error(client, unknown, api_name="/run_status")
    assert "not a run id" in api_error(client, "../secrets", api_name="/run_status")


# ---------------------------------------------------------------- the form


def form_values(**changes) -> tuple[list[str], list]:
    values = dict(model="bundled", corpus_source="imdb", max_docs=0, hub_id="", text_column="text", method="full",
                  learning_rate=2e-5, lora_r=8, lora_alpha=16, lora_dropout=0.05, lora_targets="", chunk_size=128,
                  train_size=10000, test_size=1000, mlm_probability=0.15, whole_word_mask=False, epochs=3,
                  max_steps=0, batch_size=16, grad_accum_steps=1, warmup_steps=0, weight_decay=0.01, max_grad_norm=1.0,
                  eval_every=100, log_every=10, save_every=200, precision="auto", seed=42)
    values.update(changes)
    return list(values), list(values.values())


def test_form_defaults_follow_the_course():
    cfg = config_from_values(*form_values())
    assert (cfg.learning_rate, cfg.weight_decay, cfg.chunk_size, cfg.mlm_probability) == (2e-5, 0.01, 128, 0.15)
    assert (cfg.train_size, cfg.test_size, cfg.epochs, cfg.corpus.source) == (10_000, 1_000, 3.0, "imdb")
    lora = config_from_values(*form_values(method="lora", learning_rate=2e-4, lora_targets="query, value",
                                           max_docs=500))
    assert lora.lora_targets == ["query", "value"] and lora.corpus.max_docs == 500


@pytest.mark.parametrize("changes, message", [
    ({"learning_rate": None}, "Learning rate must be a number"),
    ({"batch_size": 0}, "Batch size must be at least 1"),
    ({"method": "lora", "lora_r": 0}, "LoRA rank r must be at least 1"),
    ({"epochs": 0, "max_steps": 0}, "max steps of at least 1"),
])
def test_form_rejects_bad_values_with_a_message(changes, message):
    with pytest.raises(UserError, match=message):
        config_from_values(*form_values(**changes))


def test_learning_rate_default_follows_the_method(tiny_distilbert_dir):
    group, lr, targets = method_changed("lora", 2e-5, "", tiny_distilbert_dir)
    assert lr == 2e-4 and targets == "q_lin,v_lin" and group.visible
    assert method_changed("full", 2e-4, targets, tiny_distilbert_dir)[1] == 2e-5
    assert method_changed("lora", 5e-5, "", tiny_distilbert_dir)[1] == 5e-5  # a value the user typed stays


# ---------------------------------------------------------------- polling by offset


@pytest.fixture
def registry(tmp_path, monkeypatch):
    reg = jobs.Jobs(tmp_path / "runs", supervise=False, preflight=False)
    monkeypatch.setattr(jobs, "registry", lambda: reg)
    return reg


def fake_run(reg, run_id="20260101-000000-00000000000000aa", state="running") -> str:
    folder = write_run(reg.root, run_id, {**TrainConfig().to_dict(), "run_id": run_id, "created_at": 0},
                       {"state": state, "step": 1, "total_steps": 10, "started_at": time.time() - 5})
    run = RunFolder(folder)
    run.append_metric({"kind": "eval", "step": 0, "epoch": 0.0, "eval_loss": 9.0, "eval_perplexity": 8103.0})
    run.append_metric({"kind": "train", "step": 1, "epoch": 0.1, "loss": 9.5, "lr": 1e-3, "tokens_per_s": 100.0})
    return run_id


def test_poll_reads_only_new_rows_and_skips_when_nothing_changed(registry):
    run_id = fake_run(registry, state="completed")
    out = training_view.poll(training_view.attach(run_id, "someone"), "step", force=True)
    view, loss = out.view, out.loss_plot
    assert len(view["rows"]) == 2 and list(loss.data[0].y) == [9.5]
    assert "Read-only" in out.run_md  # not the owner
    assert all(o == gr.skip() for o in vars(training_view.poll(view, "step")).values())  # nothing new: nothing sent

    RunFolder(registry.root / run_id).append_metric(
        {"kind": "train", "step": 2, "epoch": 0.2, "loss": 9.1, "lr": 9e-4, "tokens_per_s": 110.0})
    view2 = training_view.poll(view, "step").view
    assert [r["step"] for r in view2["rows"]] == [0, 1, 2] and view2["offset"] > view["offset"]

    # A resume rewrites metrics.jsonl (new file): the poller starts over instead of reading garbage.
    folder = registry.root / run_id
    (folder / "metrics.jsonl").rename(folder / "old.jsonl")
    RunFolder(folder).append_metric(
        {"kind": "eval", "step": 0, "epoch": 0.0, "eval_loss": 9.0, "eval_perplexity": 8103.0})
    assert [r["step"] for r in training_view.poll(view2, "step").view["rows"]] == [0]


def test_history_follows_a_live_runs_step_without_rebuilding_every_poll(registry, monkeypatch):
    run_id = fake_run(registry, state="running")
    clock = [1000.0]
    monkeypatch.setattr(training_view, "_now", lambda: clock[0])
    out = training_view.poll(training_view.attach(run_id, "someone"), "step", force=True)
    view = out.view
    assert "1 / 10" in list(out.history["step"])

    RunFolder(registry.root / run_id).update_status(step=2)
    clock[0] += 1
    out = training_view.poll(view, "step")
    assert out.history == gr.skip()  # a second later: the table is not rebuilt

    RunFolder(registry.root / run_id).update_status(step=3)
    clock[0] += training_view.HISTORY_EVERY_S
    out = training_view.poll(out.view, "step")
    assert "3 / 10" in list(out.history["step"])  # ten seconds on: the step column caught up


def test_unknown_run_gives_a_clear_message(registry):
    with pytest.raises(UserError, match="No run with id"):
        training_view.attach("20260101-000000-0000000000000bad", "me")


# ---------------------------------------------------------------- figures and progress


def test_figures_show_raw_and_smoothed_loss_against_step_or_epoch():
    rows = [{"kind": "train", "step": s, "epoch": s / 10, "loss": 10 - s + (s % 2), "lr": 1e-3, "tokens_per_s": 50.0}
            for s in range(1, 11)] + [{"kind": "eval", "step": 10, "epoch": 1.0, "eval_perplexity": 30.0}]
    loss, ppl, lr, tps = run_plots.figures(rows, "epoch")
    assert [t.name for t in loss.data] == ["loss", "smoothed (EMA)"]
    assert list(loss.data[0].x) == [s / 10 for s in range(1, 11)]
    smooth = list(loss.data[1].y)
    assert max(abs(a - b) for a, b in zip(smooth[1:], smooth[:-1])) < 1.5  # smoother than the raw zig-zag
    assert list(ppl.data[0].y) == [30.0] and len(lr.data) == len(tps.data) == 1
    assert not run_plots.figures([], "step")[0].data  # empty run: an annotation, no traces


def test_progress_bar_shows_eta_from_steps_and_elapsed_time():
    status = {"state": "running", "step": 25, "total_steps": 100, "started_at": 1000.0, "steps_per_s": 0.5}
    html = run_plots.progress_html(status, now=1050.0)
    assert 'data-step="25"' in html and "25%" in html and "ETA 2:30" in html and "elapsed 0:50" in html
    assert run_plots.eta_seconds({**status, "steps_per_s": None}, now=1050.0) == pytest.approx(150.0)
    assert "ETA" not in run_plots.progress_html({**status, "state": "completed", "step": 100, "finished_at": 1100.0})


def test_form_shows_a_runs_own_settings():
    """A reattached or shared run fills the form with its config.json, not the defaults."""
    import gradio as gr

    from components.training_form import values_from_config
    from engine.training.config import TrainConfig

    cfg = TrainConfig(model="/some/folder", method="lora", learning_rate=3e-4, lora_targets=["query", "key"])
    cfg.corpus = cfg.corpus.__class__(source="rotten_tomatoes", max_docs=200)
    names = ["model", "method", "learning_rate", "lora_targets", "corpus_source", "max_docs", "batch_size"]
    assert values_from_config(names, cfg.to_dict()) == [
        "/some/folder", "lora", 3e-4, "query,key", "rotten_tomatoes", 200, cfg.batch_size]

    # A corpus the form cannot show (an upload from the CLI) leaves the corpus widgets alone.
    upload = {**cfg.to_dict(), "corpus": {"source": "upload", "upload_path": "/x.csv", "max_docs": 5}}
    values = values_from_config(["corpus_source", "max_docs", "model"], upload)
    assert values[2] == "/some/folder"
    assert all(isinstance(v, type(gr.skip())) for v in values[:2])


def test_a_fresh_page_gets_one_owner_token_for_all_its_clicks():
    """Two Start clicks before the first answer both arrive without a token; they must get
    the same owner, or the job registry could not tell a double click from two runs."""
    from components.training import first_owner_token

    one = first_owner_token("server-secret", "session-a")
    assert one == first_owner_token("server-secret", "session-a")
    assert one != first_owner_token("server-secret", "session-b")
    assert one != first_owner_token("other-secret", "session-a")  # not derivable from the session alone
    assert "session-a" not in one and len(one) == 32
    assert first_owner_token("server-secret", None) != first_owner_token("server-secret", None)


def test_the_form_estimate_applies_this_hardwares_caps(monkeypatch):
    """On a CPU Space the estimate counts the steps Start will run (300 at most), not the setting's 1,875."""
    from components.training_form import estimate_markdown

    names = ["corpus_source", "hub_id", "text_column", "max_docs", "model", "batch_size", "epochs"]
    values = ["imdb", "", "text", 0, "bundled", 16, 3]
    local = estimate_markdown(names, values, False)
    assert "1,875 optimizer steps" in local and "fewer than 10,000 chunks trains fewer steps" in local
    monkeypatch.setenv("SPACE_ID", "someone/mlm-studio")  # a CPU Space: no GPU here
    assert "300 optimizer steps" in estimate_markdown(names, values, False)
