"""The Masking tab's objectives panel in Debian chromium: MLM, CLM and NSP on the same text."""

from __future__ import annotations

import pytest

from tests.test_browser_masking import open_masking_tab


@pytest.mark.browser
def test_objectives_panel_shows_mlm_clm_and_nsp(page, app_url):
    from playwright.sync_api import expect

    open_masking_tab(page, app_url)
    page.get_by_text("Objectives: MLM, CLM and NSP").click()
    panel = page.locator("#objectives")
    expect(panel).to_contain_text("Explanation only")
    expect(page.locator("#objectives-table")).to_contain_text("training efficiency")  # the textbook's table
    page.locator("#objectives-run").click()
    page.locator("#objectives-mlm [data-loss]").first.wait_for(timeout=90_000)  # MLM: the collator's loss positions
    expect(page.locator("#objectives-mlm")).to_contain_text("Loss on")
    expect(page.locator("#objectives-clm")).to_contain_text("predicts (token i+1)")  # CLM: every position
    expect(page.locator("#objectives-nsp")).to_contain_text("NotNext")  # NSP: pairs from the corpus
    expect(page.locator("#objectives-nsp")).to_contain_text("IsNext")
    # ... and a reader sees the labels without scrolling sideways past long sentences
    page.locator("#objectives-nsp").scroll_into_view_if_needed()  # the page scrolls; the table's own scroll stays
    label = page.locator("#objectives-nsp").get_by_text("NotNext", exact=True).first
    box, table = label.bounding_box(), page.locator("#objectives-nsp").bounding_box()
    assert box and table and table["x"] <= box["x"] and box["x"] + box["width"] <= table["x"] + table["width"]
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
    expect(panel.locator(".js-plotly-plot")).to_have_count(2)  # the two attention masks
    expect(page.locator("#objectives-table")).to_contain_text("On this text MLM's loss came from")
