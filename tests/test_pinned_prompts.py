"""Pinned prompts: the field's validation, the rows the loop records at each evaluation, the timeline view."""

from __future__ import annotations

import pytest

from components.pinned_prompts import EMPTY, UNTRAINED, timeline_markdown
from engine.errors import UserError
from engine.run_folder import RunFolder
from engine.training.config import TrainConfig
from tests.conftest import tiny_config


def test_prompts_from_form_text_are_split_per_line():
    cfg = TrainConfig(pinned_prompts="The film was [MASK].\n\n  A <mask> plot. ").validated()
    assert cfg.pinned_prompts == ["The film was [MASK].", "A <mask> plot."]


@pytest.mark.parametrize("prompts, words", [
    (["no mask here"], "exactly one"),
    (["[MASK] and [MASK]"], "exactly one"),
    ([f"p{i} [MASK]" for i in range(6)], "at most 5"),
    (["[MASK] " + "x" * 300], "characters"),
])
def test_bad_prompts_are_refused(prompts, words):
    with pytest.raises(UserError, match=words):
        TrainConfig(pinned_prompts=prompts).validated()


def test_loop_records_top3_at_each_eval(tiny_model_dir, tmp_path):
    from engine.training.loop import train

    prompts = ["The movie was [MASK].", "A <mask> story."]
    cfg = tiny_config(tiny_model_dir, max_steps=2, eval_every=1, pinned_prompts=prompts)
    train(cfg, tmp_path / "run", log=lambda line: None)
    rows, _ = RunFolder(tmp_path / "run").metrics()
    recorded = [r for r in rows if r["kind"] == "prompts"]
    evals = [r["step"] for r in rows if r["kind"] == "eval"]
    assert [r["step"] for r in recorded] == evals == [0, 1, 2]
    for row in recorded:
        assert [p["prompt"] for p in row["prompts"]] == prompts
        for p in row["prompts"]:
            assert len(p["top"]) == 3
            probs = [q for _, q in p["top"]]
            assert probs == sorted(probs, reverse=True) and 0 < probs[0] <= 1


def _row(step, guesses, head_trained=True):
    return {"kind": "prompts", "step": step, "head_trained": head_trained,
            "prompts": [{"prompt": "The film was [MASK].", "top": [[g, p], ["the", 0.01], [".", 0.01]]}
                        for g, p in guesses]}


def test_timeline_view_from_hand_written_rows():
    rows = [{"kind": "eval", "step": 0}, _row(0, [("temper", 0.05)]), _row(10, [("the", 0.2)]),
            _row(20, [("the", 0.3)]), _row(30, [("film", 0.41)])]
    text = timeline_markdown(rows)
    assert "**temper** → **the** → **film**" in text
    assert "| 30 | film (0.41) |" in text and "| 0 | temper (0.05) |" in text
    assert UNTRAINED not in text


def test_timeline_says_when_the_head_started_untrained():
    assert UNTRAINED in timeline_markdown([_row(0, [("##q", 0.0001)], head_trained=False)])
    assert timeline_markdown([{"kind": "eval", "step": 0}]) == EMPTY


def test_train_tab_poll_shows_the_timeline_and_the_form_round_trips(tmp_path, monkeypatch):
    from components import training_view
    from components.training_form import config_from_values, values_from_config
    from engine.runs import jobs
    from tests.test_train_tab import fake_run

    reg = jobs.Jobs(tmp_path / "runs", supervise=False, preflight=False)
    monkeypatch.setattr(jobs, "registry", lambda: reg)
    run_id = fake_run(reg, state="completed")
    view = training_view.poll(training_view.attach(run_id, "someone"), "step", force=True).view
    RunFolder(reg.root / run_id).append_metric(_row(1, [("film", 0.5)]))
    assert "| 1 | film (0.50) |" in training_view.poll(view, "step").prompts

    cfg = TrainConfig(pinned_prompts=["A [MASK] film.", "So <mask>."])
    (text,) = values_from_config(["pinned_prompts"], cfg.to_dict())
    assert text == "A [MASK] film.\nSo <mask>."
    names = ["corpus_source", "hub_id", "text_column", "max_docs", "pinned_prompts"]
    assert config_from_values(names, ["imdb", "", "text", 0, text]).pinned_prompts == cfg.pinned_prompts
