"""The Masking tab in Debian chromium: mask a typed text, and see an invalid split refused."""

from __future__ import annotations

import pytest

TEXT = (
    "The acting was wonderful but the plot of this long film was thin and predictable from the start, "
    "and the ending made little sense to anyone in the audience."
)
SELECTED = '#mask-view .mlm-tok[data-kind]:not([data-kind="unmasked"])'


def open_masking_tab(page, app_url):
    page.goto(app_url)
    page.get_by_role("tab", name="Masking").click()  # waits for the page to hydrate
    box = page.locator("#mask-text textarea")
    box.wait_for()
    return box


@pytest.mark.browser
def test_masking_tab_highlights_masked_tokens_and_refuses_a_bad_split(page, app_url):
    from playwright.sync_api import expect

    open_masking_tab(page, app_url).fill(TEXT)
    page.locator("#mask-run").click()
    page.locator(SELECTED).first.wait_for(timeout=60_000)
    # With the default seed (42) the collator selects 4 of these 31 tokens, all shown as [MASK].
    assert page.locator(SELECTED).count() >= 1
    expect(page.locator('#mask-view [data-kind="mask"]').first).to_contain_text("[MASK]")
    expect(page.locator('#mask-view [data-kind="mask"] .mlm-label').first).to_contain_text("→")
    expect(page.locator("#mask-rate")).to_contain_text("Realised rate")
    expect(page.locator("#mask-view")).to_contain_text("random replacement")  # the legend, in words

    shares = page.locator("#mask-share-random input[type=number]")
    shares.fill("0.5")
    shares.press("Enter")
    expect(page.locator("#mask-split-msg")).to_contain_text("Invalid split", timeout=15_000)
    page.locator("#mask-run").click()
    # The click is refused with a gr.Error toast naming the fix.
    toast = page.get_by_test_id("toast-body").filter(has_text="plus the random share (0.5) is 1.3, above 1")
    expect(toast.first).to_be_visible(timeout=15_000)
