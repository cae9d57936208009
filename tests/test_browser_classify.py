"""The Classify tab in a real browser: a tiny MLM run, then a payoff experiment (classifiers from the
base and from the adapted encoder, 2 seeds) whose verdict appears, then the inference box's labels."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

from browser_helpers import RUN_ID, SCREENSHOTS, fill, open_tab

from tests.conftest import tiny_settings, wait_until


def pick(page, elem_id: str, text: str) -> None:
    """Choose the dropdown option whose label contains `text` (typing filters the options)."""
    box = page.locator(f"#{elem_id} input").first
    box.click()
    box.fill(text)
    page.locator("ul[role='listbox'] li").filter(has_text=text).first.click()
    page.keyboard.press("Escape")


def test_payoff_journey_and_inference(page, client, app_url, tiny_model_dir):
    mlm = client.predict(__import__("json").dumps(tiny_settings(tiny_model_dir)), api_name="/start_training")
    wait_until(lambda: client.predict(mlm["run_id"], api_name="/run_status")["state"] == "completed", 240, 1.0,
               "the MLM run completing")

    open_tab(page, app_url, "Classify", "#cls-start")
    page.locator("#cls-refresh").click()
    for elem_id, value in {"cls-train-size": 32, "cls-test-size": 16, "cls-max-length": 32, "cls-batch": 8}.items():
        fill(page, elem_id, value)
    page.wait_for_timeout(500)
    pick(page, "cls-payoff-run", mlm["run_id"])
    fill(page, "cls-payoff-seeds", 2)
    page.locator("#cls-payoff-start").click()
    result = page.locator("#cls-payoff-result")
    result.filter(has_text="4 of 4 runs finished").wait_for(timeout=240_000)
    text = result.inner_text()
    assert "adapted vs start (full)" in text and "95% interval" in text
    assert any(v in text for v in ("adaptation helped", "adaptation hurt", "no difference that these seeds can detect"))

    page.reload()  # the experiment is read back from its record
    page.get_by_role("tab", name="Classify").click()
    page.locator("#cls-payoff-result").filter(has_text="4 of 4 runs finished").wait_for(timeout=30_000)

    page.locator("#cls-refresh").click()
    page.wait_for_timeout(500)
    pick(page, "cls-infer-models", "seed 1")
    fill(page, "cls-infer-max-length", 32)
    page.locator("#cls-infer-preset").click()
    page.locator("#cls-infer-run").click()
    table = page.locator("#cls-infer-table")
    # a hang guard: loading the classifiers on a busy 2-core machine
    table.filter(has_text="best movie").wait_for(timeout=180_000)
    assert "positive (" in table.inner_text() or "negative (" in table.inner_text()
    assert "samples/s" in page.locator("#cls-infer-speed").inner_text()


def test_start_a_classifier_from_the_form_and_watch_it(page, browser, app_url, tiny_model_dir):
    open_tab(page, app_url, "Classify", "#cls-start")
    fill(page, "cls-model", tiny_model_dir)  # a custom model reference typed into the picker
    for elem_id, value in {"cls-train-size": 32, "cls-test-size": 16, "cls-max-length": 32, "cls-batch": 8,
                           "cls-eval-every": 2}.items():
        fill(page, elem_id, value)
    page.locator("#cls-method label").filter(has_text="lora").click()
    page.wait_for_timeout(500)
    page.locator("#cls-count").click()
    # The first model load in the app's process imports torch and transformers: on a busy 2-core machine that is slow.
    page.locator("#cls-count-info").filter(has_text="trainable parameters").wait_for(timeout=180_000)
    assert "294,912" in page.locator("#cls-count-info").inner_text()

    page.locator("#cls-start").click()
    page.locator("#cls-run-info").filter(has_text="completed").wait_for(timeout=180_000)
    page.locator("#cls-summary").filter(has_text="best (step").wait_for(timeout=10_000)
    heatmap = page.locator("#cls-confusion-plot .js-plotly-plot .heatmaplayer")
    heatmap.first.wait_for(timeout=10_000)
    info = page.locator("#cls-run-info").inner_text()
    assert "lora" in info
    run_id = RUN_ID.search(info).group(0)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "classify.png"), full_page=True)  # for a look, not compared

    shared = browser.new_context().new_page()  # a share link opens the run read-only in another browser
    shared.goto(f"{app_url}?run={run_id}")
    shared.get_by_role("tab", name="Classify").click()
    shared.locator("#cls-run-info").filter(has_text=run_id).wait_for(timeout=30_000)
    assert "read-only" in shared.locator("#cls-run-info").inner_text()
    shared.context.close()
