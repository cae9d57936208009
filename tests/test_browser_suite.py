"""The whole app in Debian chromium: one user journey per tab, each ending with a full-page
screenshot in artifacts/screenshots/ (ignored by git), and a phone-width pass over every tab ending
with one phone screen (phone.png). MLM_UPDATE_SCREENSHOTS=1 also refreshes docs/screenshots/,
the pictures the README shows.

The journeys go end to end; details are asserted by the per-tab browser tests
(test_browser_train.py, test_browser_compare.py, test_browser_masking.py) and the
gradio_client tests. The app (the `app_url` fixture) and its runs folder are shared with
other tests, so this suite counts only the runs it created.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest
from browser_helpers import (
    LOSS_POINTS_JS,
    LOSS_STEPS_JS,
    assert_run_config,
    fill,
    fill_tiny_run_form,
    fill_visible_label,
    open_tab,
    run_folders,
    run_id_on_page,
    screenshot,
    wait_chart_moves,
    wait_loss_step_above,
    wait_state,
)
from run_builders import TRAINED, build_runs

pytestmark = pytest.mark.browser

MASK_TEXT = ("The cinematography was breathtaking, but the screenplay felt unconvincing and the "
             "characterisation of the protagonist was underwhelming.")
PHONE = {"width": 390, "height": 844}
PRIMARY_BUTTONS = {"Dataset": "#ds-analyse", "Masking": "#mask-run", "Train": "#train-start",
                   "Compare": "#fill-btn", "Costs": "#costs-estimate"}


def expect(locator):
    from playwright.sync_api import expect as _expect

    return _expect(locator)


def block(page, label: str):
    """The (visible) Gradio block whose label is `label`, e.g. a Dataframe's."""
    return page.locator(".block", has=page.get_by_text(label, exact=True)).filter(visible=True).last


# ---------------------------------------------------------------- Dataset


def test_dataset_journey(page, app_url):
    open_tab(page, app_url, "Dataset", "#ds-analyse")
    page.locator("#ds-source").get_by_text("Rotten Tomatoes (bundled, 8,530)").click()
    fill_visible_label(page, "Documents to use (0 = all)", 500)
    page.locator("#ds-analyse").click()

    expect(page.locator("#ds-sanity")).to_contain_text("Label sanity check", timeout=120_000)
    sizes = block(page, "Split sizes (documents)")
    expect(sizes).to_contain_text("450")  # 500 documents, a tenth held out for test
    expect(sizes).to_contain_text("50")
    expect(block(page, "Labels per split")).to_contain_text("share")
    expect(page.locator("#ds-samples .ds-sample")).to_have_count(3)
    page.locator(".js-plotly-plot .bars path").filter(visible=True).first.wait_for(timeout=30_000)  # histogram
    expect(page.locator("#ds-chunk .ds-special", has_text="[SEP]").first).to_be_visible()
    expect(page.locator("#ds-chunk .ds-special", has_text="[CLS]").first).to_be_visible()
    expect(page.locator("#ds-chunk-summary")).to_contain_text("chunks")
    expect(block(page, "Split into the most pieces")).to_contain_text("pieces")

    # Re-roll: a new seed, other samples.
    before = page.locator("#ds-samples").inner_text()
    page.get_by_role("button", name="Re-roll samples").click()
    page.wait_for_function(
        "(old) => { const s = document.querySelector('#ds-samples'); "
        "return s && s.innerText !== old && s.querySelectorAll('.ds-sample').length === 3; }",
        arg=before, timeout=30_000)
    screenshot(page, "dataset")

    # The Costs tab takes its tokens per epoch from the corpus analysed here.
    summary = page.locator("#ds-chunk-summary").inner_text()
    train_chunks = int(re.search(r"train: [\d,]+ tokens → ([\d,]+) chunks", summary).group(1).replace(",", ""))
    page.get_by_role("tab", name="Costs").click()
    page.locator("#costs-from-dataset").click()
    expect(page.locator("#costs-tokens input, #costs-tokens textarea").first).to_have_value(
        f"{train_chunks * 128:,}", timeout=30_000)
    expect(page.get_by_text("Rotten Tomatoes").filter(visible=True).first).to_be_visible()


# ---------------------------------------------------------------- Masking


def test_masking_journey(page, app_url):
    open_tab(page, app_url, "Masking", "#mask-text textarea")
    page.locator("#mask-text textarea").fill(MASK_TEXT)
    page.locator("#mask-run").click()
    selected = page.locator('#mask-view .mlm-tok[data-kind]:not([data-kind="unmasked"])')
    selected.first.wait_for(timeout=60_000)
    expect(page.locator("#mask-rate")).to_contain_text("Realised rate")

    page.locator("#mask-strategy").get_by_text("Whole-word").click()
    expect(page.locator("#mask-split-msg")).to_contain_text("Whole-word masking: every selected word is shown as "
                                                            "[MASK]", timeout=15_000)
    # the sliders say what the collator does: [MASK] share 1, random 0, and locked
    expect(page.locator("#mask-share-mask input[type=number]")).to_have_value("1")
    expect(page.locator("#mask-share-random input[type=number]")).to_be_disabled()
    prob = page.locator("#mask-prob input[type=number]")  # more words masked, so whole words show
    prob.fill("0.3")
    prob.press("Enter")
    page.locator("#mask-run").click()
    expect(page.locator("#mask-rate")).to_contain_text("setting 30%", timeout=60_000)
    # Whole-word masking shows [MASK] for every selected piece: no random or kept tokens.
    page.wait_for_function("""() => {
      const view = document.querySelector('#mask-view');
      return view.querySelectorAll('[data-kind="mask"]').length >= 2
        && !view.querySelector('[data-kind="random"], [data-kind="kept"]');
    }""", timeout=15_000)
    screenshot(page, "masking")


# ---------------------------------------------------------------- Train


def start_tiny_run(page, model_dir: str, runs_dir: Path) -> str:
    expected = fill_tiny_run_form(page, model_dir, eval_every=5)  # lasts the whole journey; cancelled at the end
    page.locator("#train-start").click()
    run_id = run_id_on_page(page)
    assert_run_config(Path(runs_dir) / run_id, expected)
    return run_id


def test_train_journey(page, browser, app_url, app_runs_dir, tiny_model_dir):
    runs_before = run_folders(app_runs_dir)
    open_tab(page, app_url, "Train", "#train-model")
    run_id = start_tiny_run(page, tiny_model_dir, app_runs_dir)
    assert run_folders(app_runs_dir) - runs_before == {run_id}

    try:
        # The charts move: more points arrive while we watch.
        first = wait_loss_step_above(page, 0, timeout=120_000)
        points = page.evaluate(LOSS_POINTS_JS)
        wait_chart_moves(page, app_runs_dir / run_id, first + 3)
        assert page.evaluate(LOSS_POINTS_JS) > points

        # Cancel: it stops after the current step.
        page.locator("#train-cancel").click()
        wait_state(page, "cancelled")
        expect(page.locator("#train-run-info")).to_contain_text("Cancelled at step")
        stopped = page.evaluate(LOSS_STEPS_JS)

        # Resume: same run, going on from its checkpoint past where it stopped.
        expect(page.locator("#train-resume")).to_be_enabled()
        page.locator("#train-resume").click()
        wait_state(page, "running")
        wait_chart_moves(page, app_runs_dir / run_id, stopped + 2, timeout=120_000)
        page.locator("#train-log textarea").evaluate("el => el.scrollTop = el.scrollHeight")
        screenshot(page, "train")  # the form that started it, and the charts going on after the resume

        # Reload: reattached to the same run, still in control, and the chart keeps moving.
        page.reload()
        page.get_by_role("tab", name="Train").click()
        assert run_id_on_page(page) == run_id
        now = wait_loss_step_above(page, 0, timeout=30_000)
        wait_chart_moves(page, app_runs_dir / run_id, now + 2)
        assert "Read-only" not in page.locator("#train-run-info").inner_text()
        expect(page.locator("#train-cancel")).to_be_enabled()

        # A second browser context opens the shared link: it watches, read-only.
        other = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            watcher = other.new_page()
            open_tab(watcher, f"{app_url}?run={run_id}", "Train", "#train-model")
            assert run_id_on_page(watcher) == run_id
            expect(watcher.locator("#train-run-info")).to_contain_text("Read-only", timeout=20_000)
            expect(watcher.locator("#train-cancel")).to_be_disabled()
            expect(watcher.locator("#train-resume")).to_be_disabled()
            wait_loss_step_above(watcher, 0, timeout=20_000)
        finally:
            other.close()
        page.locator("#train-cancel").click()
        wait_state(page, "cancelled")
    finally:
        # Leave no worker training behind on a shared machine, even when a step above failed.
        with contextlib.suppress(Exception):  # the page may be gone; the first error is the one to see
            if page.locator("#train-cancel").is_enabled(timeout=2_000):
                page.locator("#train-cancel").click(timeout=2_000)
    assert run_folders(app_runs_dir) - runs_before == {run_id}


# ---------------------------------------------------------------- Compare


@pytest.fixture(scope="module")
def finished_run(app_runs_dir, tiny_model_dir, tokenizer, tmp_path_factory) -> str:
    """A finished tiny run trained to say "movie" (tests/run_builders.py), unless another test built it."""
    if not (app_runs_dir / TRAINED).exists():
        build_runs(app_runs_dir, tiny_model_dir, tokenizer, tmp_path_factory.mktemp("suite-runs"))
    return TRAINED


def test_compare_journey(page, app_url, finished_run):
    open_tab(page, app_url, "Compare", "#fill-text textarea")
    page.locator("#compare-models input").click()
    page.get_by_role("option", name=re.compile(finished_run)).click()
    page.keyboard.press("Escape")
    page.locator("#fill-text textarea").fill("This is a great [MASK].")
    page.locator("#compare-btn").click()
    columns = page.locator("#compare-columns .mlm-col")
    expect(columns).to_have_count(2, timeout=90_000)
    expect(columns.nth(1)).to_contain_text(finished_run)
    expect(columns.nth(1)).to_contain_text("movie")

    page.locator("#fill-preset input").click()
    page.get_by_role("option", name="I love [MASK] learning and [MASK] intelligence.").click()
    page.locator("#fill-btn").click()
    # top-5 for each of the two masks (a count that retries: plotly may still be drawing)
    expect(page.locator("#fill-plot .js-plotly-plot .bars path")).to_have_count(10, timeout=60_000)
    expect(page.locator("#fill-table")).to_contain_text("probability")
    screenshot(page, "compare")


# ---------------------------------------------------------------- Costs


def test_costs_journey(page, app_url):
    open_tab(page, app_url, "Costs", "#costs-estimate")
    expect(page.locator("#costs-model input")).to_have_value("bert-base-uncased")
    fill(page, "costs-r", 8)
    fill(page, "costs-targets", "query, value")
    page.locator("#costs-estimate").click()
    expect(page.locator("#costs-summary")).to_contain_text("LoRA trains 294,912 parameters", timeout=120_000)
    expect(page.locator("#costs-table")).to_contain_text("294,912")
    expect(page.locator("#costs-formula")).to_contain_text("8×(768+768)/(768×768) = 12,288/589,824 = 2.08%")
    # Six parts stacked on two bars (a part of zero height draws nothing).
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .bars path').length >= 8",
                           timeout=30_000)
    screenshot(page, "costs")


# ---------------------------------------------------------------- phone width


def show_tab(page, name: str) -> None:
    """Click a tab; at phone width Gradio may fold some tabs into an overflow menu."""
    tab = page.get_by_role("tab", name=name)
    if tab.is_visible():
        tab.click()
        return
    page.get_by_role("button", name="More tabs").click()
    page.locator(".overflow-dropdown button", has_text=name).click()


def test_phone_width(browser, app_url):
    ctx = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    try:
        page = ctx.new_page()
        page.goto(app_url)
        page.get_by_role("tab", name="Dataset").wait_for()
        for name, button in PRIMARY_BUTTONS.items():
            show_tab(page, name)
            primary = page.locator(button)
            primary.wait_for()
            primary.scroll_into_view_if_needed()
            box = primary.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 1, (name, box)
            width = page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= PHONE["width"] + 4, f"{name} tab is {width}px wide on a {PHONE['width']}px phone"
        show_tab(page, "Masking")
        page.locator("#mask-text textarea").fill(MASK_TEXT)
        page.locator("#mask-run").click()
        page.locator('#mask-view .mlm-tok[data-kind="mask"]').first.wait_for(timeout=60_000)
        # One phone screen (a full page at this width is a long strip): the button and its result.
        page.locator("#mask-run").evaluate("el => el.scrollIntoView({block: 'start'})")
        page.evaluate("() => window.scrollBy(0, -16)")
        screenshot(page, "phone", full_page=False)
    finally:
        ctx.close()
