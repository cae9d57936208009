"""The Compare tab's public API (/fill_mask, /compare) through gradio_client against `python app.py`."""

from __future__ import annotations

import pytest
from run_builders import FAILED, LORA_A, RUNNING, TRAINED, build_runs

GREAT = "This is a great [MASK]."
GREAT_LOW = "this is a great [MASK]."  # the tiny run was trained on lower-case text


@pytest.fixture(scope="module")
def app_runs(app_runs_dir, tiny_model_dir, tokenizer, tmp_path_factory):
    build_runs(app_runs_dir, tiny_model_dir, tokenizer, tmp_path_factory.mktemp("tab-work"))
    return app_runs_dir


def _error(client, *args, api_name):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as info:
        client.predict(*args, api_name=api_name)
    return str(info.value)


def _rows(table: dict) -> list[dict]:
    return [dict(zip(table["headers"], row)) for row in table["data"]]


def test_fill_mask_on_the_bundled_model_says_its_head_is_untrained(client):
    info, notice, plot, table, tokens = client.predict("bundled", "I love [MASK] learning and <mask> intelligence.",
                                                       4, api_name="/fill_mask")
    assert "22.7M parameters" in info and "untrained until fine-tuned" in info
    assert "random guesses" in notice
    rows = _rows(table)
    assert len(rows) == 8 and {r["mask"] for r in rows} == {1, 2}
    assert "[MASK]" in [r["token"] for r in _rows(tokens)]


def test_fill_mask_on_a_local_folder(client, app_runs):
    info, notice, _plot, table, _tokens = client.predict(str(app_runs / TRAINED / "final"), GREAT_LOW, 3,
                                                         api_name="/fill_mask")
    assert "untrained" not in info and _rows(table)[0]["token"] == "movie"


def test_fill_mask_long_text_is_cut_with_a_notice(client):
    _info, notice, *_ = client.predict("bundled", GREAT + " word" * 25_000, 2, api_name="/fill_mask")
    assert "only the first 5,000 were used" in notice


@pytest.mark.parametrize("ref, text, message", [
    ("bundled", "", "Type a sentence with at least one [MASK]"),
    ("bundled", "no mask here", "No mask token found"),
    ("bundled", " ".join(["[MASK]"] * 11), "the table shows at most 10"),
    ("distilbert-base-uncased", GREAT, "not available offline"),
])
def test_fill_mask_bad_input(client, ref, text, message):
    assert message in _error(client, ref, text, 5, api_name="/fill_mask")


def test_compare_base_and_a_trained_run(client, app_runs, tiny_model_dir):
    notice, html, moves, memory, link = client.predict(["base", TRAINED], GREAT_LOW, 5, tiny_model_dir,
                                                       api_name="/compare")
    assert TRAINED in html and "movie" in html
    top = max(_rows(moves), key=lambda r: r["change"])
    assert top["token"] == "movie" and top["model"].startswith(TRAINED)
    assert {r["kind"] for r in _rows(memory)} >= {"full model"}
    assert f"?compare=base,{TRAINED}&text=this%20is%20a%20great%20%5BMASK%5D." in link


def test_compare_lora_run_reports_adapter_memory(client, app_runs, tiny_model_dir):
    _notice, html, _moves, memory, _link = client.predict([LORA_A], GREAT, 3, tiny_model_dir, api_name="/compare")
    assert "LoRA adapter (shares the base)" in html
    assert "LoRA adapter" in {r["kind"] for r in _rows(memory)}


@pytest.mark.parametrize("models, text, message", [
    ([], GREAT, "No model selected"),
    ([FAILED], GREAT, f"Run {FAILED} failed"),
    ([RUNNING], GREAT, "is still running"),
    (["20990101-000000-0000000000000000"], GREAT, "not on this server"),
    (["base"], "no mask", "No mask token found"),
    (["base"], "[MASK] " * 11, "the table shows at most 10"),
])
def test_compare_bad_input(client, app_runs, models, text, message):
    assert message in _error(client, models, text, 5, "bundled", api_name="/compare")


def test_server_keeps_serving_after_errors(client):
    _error(client, [], GREAT, 5, "bundled", api_name="/compare")
    notice, html, *_ = client.predict(["base"], GREAT, 2, "bundled", api_name="/compare")
    assert "base: bundled" in html


def test_prompt_list_table_and_csv(client, app_runs, tiny_model_dir):
    wide, csv_path, skipped = client.predict(["base", TRAINED], "this is a great [MASK].\nI [MASK] it.",
                                             tiny_model_dir, api_name="/compare_prompts")
    assert skipped == ""
    rows = _rows(wide)
    assert len(rows) == 2 and any(h.startswith(TRAINED) for h in wide["headers"])
    with open(csv_path) as f:
        lines = f.read().splitlines()
    assert lines[0] == "prompt,mask,model,top1,probability" and len(lines) == 1 + 2 * 2


def test_prompt_list_bad_line_is_reported_and_the_rest_runs(client):
    wide, _csv, skipped = client.predict(["base"], "a [MASK]\nnothing <here>", "bundled", api_name="/compare_prompts")
    assert len(_rows(wide)) == 1
    assert "Prompt 2 ('nothing &lt;here&gt;') skipped" in skipped  # escaped: shown as text, not as HTML
    assert "No prompt in the list can be used" in _error(client, ["base"], "nothing", "bundled",
                                                         api_name="/compare_prompts")


def test_perplexity_table(client, app_runs, tiny_model_dir):
    frame, _plot, note = client.predict(["base", TRAINED], tiny_model_dir, 16, api_name="/compare_perplexity")
    ppl = {r["model"].split(" ")[0]: r["perplexity"] for r in _rows(frame)}
    assert ppl[TRAINED] < ppl["base:"] and TRAINED in note


def test_downstream_check_on_a_small_slice(client, tiny_model_dir):
    frame, _plot, _payoff, _verdict = client.predict(["base"], tiny_model_dir, 40, 2, api_name="/downstream_check")
    row = _rows(frame)[0]
    assert 0.0 <= row["accuracy_mean"] <= 1.0 and len(str(row["accuracies"]).split(", ")) == 2
