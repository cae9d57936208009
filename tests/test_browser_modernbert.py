"""A ModernBERT in Debian chromium: typed into the Masking and Train tabs, it brings its own 30%
masking rate (with the reason) and its 8,192-token chunk limit, and masks with its own tokenizer."""

from __future__ import annotations

import pytest


@pytest.mark.browser
def test_a_modernbert_brings_its_rate_and_long_chunks(page, app_url, tiny_modernbert_dir):
    from playwright.sync_api import expect

    page.goto(app_url)
    page.get_by_role("tab", name="Masking").click()
    model = page.get_by_label("Model (its tokenizer and [MASK] token)")
    model.fill(tiny_modernbert_dir)
    model.press("Enter")
    expect(page.locator("#mask-rate-reason")).to_contain_text("pretrained with 30%", timeout=30_000)
    expect(page.locator("#mask-prob input[type=number]")).to_have_value("0.3")
    page.locator("#mask-run").click()
    expect(page.locator('#mask-view [data-kind="mask"]').first).to_contain_text("[MASK]", timeout=60_000)
    expect(page.locator("#mask-rate")).to_contain_text("setting 30%")

    page.get_by_role("tab", name="Train").click()
    box = page.locator("#train-model input, #train-model textarea").first
    box.fill(tiny_modernbert_dir)
    box.blur()
    page.get_by_text("Data and masking").click()
    expect(page.get_by_text("8 to 8,192 tokens for this model")).to_be_visible(timeout=30_000)
    expect(page.locator("#train-mlm-prob input")).to_have_value("0.3")
    expect(page.locator("#train-mlm-prob")).to_contain_text("ModernBERT was pretrained with 30%")


@pytest.mark.browser
def test_the_costs_tab_estimates_modernbert_at_8192_tokens(page, app_url):
    from playwright.sync_api import expect

    from tests.browser_helpers import field_box, fill, open_tab

    open_tab(page, app_url, "Costs", "#costs-estimate")
    model = field_box(page, "costs-model")
    model.fill("modernbert-base")
    model.press("Enter")
    expect(page.locator("#costs-model-info")).to_contain_text("at most 8,192 tokens", timeout=30_000)
    expect(field_box(page, "costs-targets")).to_have_value("Wqkv")
    expect(field_box(page, "costs-mlm-prob")).to_have_value("0.3")
    fill(page, "costs-seq", 8192)
    fill(page, "costs-batch", 1)
    page.locator("#costs-estimate").click()
    summary = page.locator("#costs-summary")
    expect(summary).to_contain_text("LoRA trains 540,672 parameters", timeout=120_000)
    expect(summary).to_contain_text("14 of 22 layers attend within a 128-token window")
    fill(page, "costs-seq", 8193)
    page.locator("#costs-estimate").click()
    expect(page.get_by_text("maximum of 8192 tokens").first).to_be_visible(timeout=30_000)
