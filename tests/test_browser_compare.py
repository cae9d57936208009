"""The Compare tab in Debian chromium: a preset through fill-mask, and a shared ?compare= link."""

from __future__ import annotations

import pytest
from run_builders import TRAINED, build_runs


@pytest.fixture(scope="module")
def app_runs(app_runs_dir, tiny_model_dir, tokenizer, tmp_path_factory):
    if not (app_runs_dir / TRAINED).exists():  # test_compare_tab may have built them already
        build_runs(app_runs_dir, tiny_model_dir, tokenizer, tmp_path_factory.mktemp("browser-work"))
    return app_runs_dir


def open_compare_tab(page, url):
    page.goto(url)
    page.get_by_role("tab", name="Compare").click()  # waits for the page to hydrate
    page.locator("#fill-text textarea").wait_for()


@pytest.mark.browser
def test_preset_fill_mask_shows_bars_and_table(page, app_url):
    from playwright.sync_api import expect

    open_compare_tab(page, app_url)
    page.locator("#fill-preset input").click()
    page.get_by_role("option", name="I love [MASK] learning and [MASK] intelligence.").click()
    expect(page.locator("#fill-text textarea")).to_have_value("I love [MASK] learning and [MASK] intelligence.")
    page.locator("#fill-btn").click()
    expect(page.locator("#fill-notice")).to_contain_text("random guesses", timeout=60_000)
    expect(page.locator("#model-info")).to_contain_text("untrained until fine-tuned")
    bars = page.locator("#fill-plot .js-plotly-plot .bars path")
    bars.first.wait_for(timeout=30_000)
    assert bars.count() == 10  # top-5 for each of the two masks
    expect(page.locator("#fill-plot")).to_contain_text("mask 2")
    expect(page.locator("#fill-table")).to_contain_text("probability")


@pytest.mark.browser
def test_compare_link_reproduces_the_view(page, app_url, app_runs):
    from playwright.sync_api import expect

    open_compare_tab(page, f"{app_url}?compare=base,{TRAINED}&text=this%20is%20a%20great%20%5BMASK%5D.")
    columns = page.locator("#compare-columns .mlm-col")
    columns.nth(1).wait_for(timeout=60_000)
    expect(columns.nth(1)).to_contain_text(TRAINED)
    expect(columns.nth(1)).to_contain_text("movie")
    expect(page.locator("#fill-text textarea")).to_have_value("this is a great [MASK].")
    expect(page.locator("#compare-link textarea, #compare-link input").first).to_have_value(
        f"{app_url}?compare=base,{TRAINED}&text=this%20is%20a%20great%20%5BMASK%5D.")


@pytest.mark.browser
def test_link_with_unknown_runs_says_so(page, app_url):
    from playwright.sync_api import expect

    open_compare_tab(page, f"{app_url}?compare=nope,20990101-000000-0000000000000000")
    expect(page.locator("#compare-notice")).to_contain_text("not on this server: nope", timeout=60_000)
