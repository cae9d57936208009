"""Issue 12's smaller pieces without a server: run names and notes, the estimate kept and shown
against the actual, elapsed time across a resume, the run table and overlay, the share link,
links that open their tab, the whole-word sliders, escaped error toasts, quiet worker logs."""

from __future__ import annotations

import types
import warnings

import gradio as gr
import pytest

import app
from components import common, masking, run_plots, run_table, training_view
from engine.errors import UserError
from engine.runs.record import earlier_attempts
from engine.runs.worker import quiet_library_warnings
from engine.training.config import NAME_MAX, NOTES_MAX, TrainConfig


def test_names_and_notes_are_bounded_and_stripped_of_control_characters():
    cfg = TrainConfig(name="a\x00b\x1b<script>alert(1)</script>", notes="line 1\nline\t2\x07 end").validated()
    assert (cfg.name, cfg.notes) == ("ab<script>alert(1)</script>", "line 1\nline\t2 end")  # HTML escaped where shown
    with pytest.raises(UserError, match=f"Name is too long: 10,000 characters \\(at most {NAME_MAX}\\)"):
        TrainConfig(name="x" * 10_000).validated()
    with pytest.raises(UserError, match=f"Notes is too long: 2,001 characters \\(at most {NOTES_MAX:,}\\)"):
        TrainConfig(notes="y" * (NOTES_MAX + 1)).validated()


def test_elapsed_goes_on_after_a_resume():
    first = {"started_at": 1000.0, "finished_at": 1100.0}
    assert earlier_attempts(first) == 100.0
    second = {"started_at": 2000.0, "finished_at": None, "elapsed_before": 100.0, "state": "running", "step": 5}
    assert earlier_attempts(second) == 100.0  # a pending attempt adds nothing yet
    assert "elapsed 1:50" in run_plots.progress_html(second, now=2010.0)


def test_estimate_vs_actual_once_the_run_is_over():
    status = {"state": "completed", "step": 40, "started_at": 0.0, "finished_at": 30.0,
              "estimate": {"seconds": 20.0, "steps": 40, "basis": "cost model"}}
    line = training_view.estimate_line(status)
    assert line == "Estimated at Start: 20 s for 40 steps (cost model); actual: 30 s for 40 steps (1.50x)."
    assert "actual" not in training_view.estimate_line({**status, "state": "running", "finished_at": None})


def test_share_link_is_a_full_url():
    assert training_view.share_url({"run_id": "r1"}, "http://host:7860/") == "http://host:7860/?run=r1"
    assert training_view.share_url({}, "http://host:7860/") == ""


def test_run_table_and_overlay_escape_names():
    rows = [{"run_id": "20260101-000000-aaaaaaaaaaaaaaaa", "name": "<b>x</b>", "corpus": "imdb", "model": "bundled",
             "method": "lora", "trainable_params": 1234, "state": "completed", "step": 4, "total_steps": 4,
             "perplexity_before": 100.0, "perplexity_after": 50.123, "duration_s": 75.0, "estimate_s": 60.0,
             "created_at": 0}]
    frame = run_table.history_frame(rows)
    assert list(frame.iloc[0][["name", "corpus", "trainable params", "perplexity after", "duration"]]) == [
        "<b>x</b>", "IMDb reviews (bundled)", 1234, 50.12, "1:15"]
    metrics = [{"kind": "train", "step": 1, "epoch": 0.1, "loss": 3.0},
               {"kind": "eval", "step": 1, "epoch": 0.1, "eval_perplexity": 20.0}]
    fig = run_table.overlay([("<b>x</b>", metrics), ("y", metrics)])
    assert {t.name for t in fig.data} == {"&lt;b&gt;x&lt;/b&gt;", "y"}
    assert fig.layout.yaxis2.type == "log"


def test_show_command_gives_the_cli_and_the_client_call():
    text = run_table.commands({"model": "bundled", "max_steps": 5, "run_id": "r", "created_at": 1})
    assert "python -m engine train --config run.json" in text and '"max_steps": 5' in text
    assert 'api_name="/start_training"' in text and "run_id" not in text


@pytest.mark.parametrize("query, tab", [({"run": "r1"}, "train"), ({"compare": "a,b"}, "compare")])
def test_a_link_opens_the_tab_it_is_for(query, tab):
    update = app.tab_for_link(types.SimpleNamespace(query_params=query))
    assert update.selected == tab
    assert app.tab_for_link(types.SimpleNamespace(query_params={})) == gr.skip()


def test_whole_word_locks_the_sliders_at_what_the_collator_does():
    from transformers import DataCollatorForLanguageModeling

    from engine.models import BUNDLED, cached_tokenizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        collator = DataCollatorForLanguageModeling(cached_tokenizer(BUNDLED), whole_word_mask=True,
                                                   mask_replace_prob=0.8, random_replace_prob=0.1)
    mask, rand, keep, message = masking.strategy_changed("whole_word")
    assert (mask.value, rand.value, keep) == (collator.mask_replace_prob, collator.random_replace_prob, 0.0)
    assert mask.interactive is False and rand.interactive is False and message.count("Whole-word") == 1
    mask, rand, keep, message = masking.strategy_changed("token")
    assert (mask.value, rand.value, keep, mask.interactive, message) == (0.8, 0.1, 0.1, True, "")


def test_error_toasts_keep_angle_brackets():
    @common.user_errors
    def fails():
        raise UserError("Type a text with <mask> or [MASK].")

    with pytest.raises(gr.Error) as info:
        fails()
    assert info.value.message == "Type a text with &lt;mask&gt; or [MASK]."


def test_worker_log_drops_library_warnings_only():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_library_warnings()
        warnings.warn_explicit("deprecated", FutureWarning, "m.py", 1, module="transformers.modeling_utils")
        warnings.warn_explicit("ours", UserWarning, "loop.py", 1, module="engine.training.loop")
    assert [str(w.message) for w in caught] == ["ours"]


def _by_elem_id(demo, elem_id):
    return next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def test_nothing_can_leave_start_disabled():
    """A failed Start once left the button disabled until a reload: no event writes to it any more."""
    demo = app.build_app()
    start = _by_elem_id(demo, "train-start")
    writers = [fn for fn in demo.fns.values() if any(getattr(o, "_id", o) == start._id for o in fn.outputs)]
    assert writers == []
    clicks = [fn for fn in demo.fns.values() if (start._id, "click") in [tuple(t) for t in fn.targets]]
    assert len(clicks) == 1 and clicks[0].trigger_mode == "once"


def test_the_text_column_line_follows_the_picked_column(tmp_path):
    from components import dataset

    path = tmp_path / "notes.csv"
    path.write_text("note,summary\n" + "\n".join(f'"long clinical note number {i} with many words",short {i}'
                                                  for i in range(10)))
    assert "Text column: `note` (the longest texts)" in dataset.upload_summary(str(path), "")
    assert "Text column: `summary` (your pick)" in dataset.upload_summary(str(path), "summary")


def test_another_corpus_clears_the_previous_results():
    """Picking another source, stored corpus or file empties the analysis: no stale results on screen."""
    demo = app.build_app()
    blocks = {getattr(b, "elem_id", None): b for b in demo.blocks.values()}
    cleared_by = {}
    for fn in demo.fns.values():
        ids = {getattr(o, "_id", o) for o in fn.outputs}
        if blocks["ds-sanity"]._id in ids and blocks["ds-stored-info"]._id in ids:
            for block_id, event in fn.targets:
                cleared_by[block_id] = event
    for elem_id in ("ds-source", "ds-stored", "ds-upload"):
        assert cleared_by.get(blocks[elem_id]._id) == "change", elem_id


def test_a_classifier_runs_link_opens_the_classify_tab(tmp_path, monkeypatch):
    from tests.conftest import write_run

    monkeypatch.setenv("MLM_RUNS_DIR", str(tmp_path))
    write_run(tmp_path, "20260101-000000-00000000000000c1", {"kind": "classify", "model": "bundled"},
              {"state": "completed"})
    write_run(tmp_path, "20260101-000000-00000000000000a1", {"model": "bundled"}, {"state": "completed"})
    link = app.tab_for_link(types.SimpleNamespace(query_params={"run": "20260101-000000-00000000000000c1"}))
    assert link.selected == "classify"
    mlm = app.tab_for_link(types.SimpleNamespace(query_params={"run": "20260101-000000-00000000000000a1"}))
    assert mlm.selected == "train"
    odd = app.tab_for_link(types.SimpleNamespace(query_params={"run": "../" * 5_000}))
    assert odd.selected == "train"  # not a run: the Train tab explains the link
