"""Issue 12's journey in Debian chromium, on a corpus the test writes itself (clinical ward notes,
not movie reviews): upload -> analyse (stored, renamed) -> mask a chunk of it -> train a tiny named
run on it -> reload and find it by name -> open its share link in a second browser (the Train tab
opens by itself) -> Compare fill-mask on a clinical prompt and perplexity on that corpus -> Costs
counts its tokens. Screenshots go to artifacts/screenshots/ (docs/screenshots/ with
MLM_UPDATE_SCREENSHOTS=1); the README shows own-domain-*.png.
"""

from __future__ import annotations

import re

import pytest
from browser_helpers import field_box, fill, fill_form, open_tab, screenshot, wait_state

pytestmark = pytest.mark.browser

FINDINGS = ["bilateral basal crackles", "raised JVP", "pitting oedema to the knees", "an S3 gallop",
            "new atrial fibrillation", "orthopnoea and PND"]
DRUGS = ["furosemide 40 mg", "bisoprolol 2.5 mg", "ramipril 2.5 mg", "spironolactone 25 mg"]
RUN_NAME = "cardio ward tiny"


def clinical_csv() -> str:
    rows = []
    for i in range(240):
        note = (f"Day {i % 9 + 1}: patient reviewed on the ward round; dyspnoea on exertion with "
                f"{FINDINGS[i % len(FINDINGS)]}. Echocardiogram shows reduced ejection fraction; NT-proBNP raised. "
                f"Plan: continue {DRUGS[i % len(DRUGS)]}, daily weights, fluid restriction and repeat U&E.")
        rows.append(f'"{note}",{"hf" if i % 2 else "af"}')
    return "note,label\n" + "\n".join(rows)


def expect(locator):
    from playwright.sync_api import expect as _expect

    return _expect(locator)


def pick(page, elem_id: str, text: str) -> None:
    """Choose the option containing `text` in a Gradio dropdown."""
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=re.compile(re.escape(text))).first.click()


def test_own_domain_journey(page, browser, app_url, tiny_model_dir, tmp_path, request):
    corpus_file = tmp_path / "ward-notes.csv"
    corpus_file.write_text(clinical_csv())

    # Dataset: upload, analyse; the analysis stores the corpus under an id, with the file name as its name.
    open_tab(page, app_url, "Dataset", "#ds-analyse")
    page.locator("#ds-source").get_by_text("Upload a file").click()
    page.locator("#ds-upload input[type=file]").set_input_files(str(corpus_file))
    expect(page.locator("#ds-upload-note")).to_contain_text("Text column: note", timeout=30_000)
    stored_before = int(re.search(r"Stored corpora: (\d+)", page.locator("#ds-limits").inner_text()).group(1))
    page.locator("#ds-analyse").click()
    info = page.locator("#ds-stored-info")
    expect(info).to_contain_text("ward-notes.csv", timeout=120_000)
    expect(page.locator("#ds-limits")).to_contain_text(f"Stored corpora: {stored_before + 1} of", timeout=30_000)
    assert re.search(r"id [0-9a-f]{16}", info.inner_text())  # the id the API and the CLI take
    expect(page.locator("#ds-sanity")).to_contain_text("Label sanity check", timeout=60_000)
    fill(page, "ds-corpus-name", "Cardiology ward notes")
    page.locator("#ds-rename").click()
    expect(info).to_contain_text("Cardiology ward notes", timeout=20_000)
    screenshot(page, "own-domain-dataset")

    # Masking: a chunk of that corpus.
    page.get_by_role("tab", name="Masking").click()
    page.get_by_text("A chunk of a corpus").click()
    pick(page, "mask-corpus", "Cardiology ward notes")
    page.get_by_role("button", name="Random chunk").click()
    expect(page.locator("#mask-rate")).to_contain_text("Cardiology ward notes", timeout=60_000)

    # Train: a named tiny run on it; the estimate is there before Start.
    page.get_by_role("tab", name="Train").click()
    pick(page, "train-corpus", "Cardiology ward notes")
    page.get_by_text("Data and masking").click()
    page.get_by_text("Optimisation").click()
    field_box(page, "train-max-steps").wait_for()
    fill_form(page, {"train-name": RUN_NAME, "train-model": tiny_model_dir, "train-chunk": 32,
                     "train-train-size": 64, "train-test-size": 8, "train-max-steps": 6, "train-batch": 8,
                     "train-log-every": 1, "train-eval-every": 3, "train-lr": 0.001})
    expect(page.locator("#train-estimate")).to_contain_text("6 optimizer steps", timeout=30_000)
    page.locator("#train-start").click()
    wait_state(page, "completed", timeout=240_000)
    run_info = page.locator("#train-run-info")
    expect(run_info).to_contain_text(RUN_NAME)
    expect(run_info).to_contain_text("actual:", timeout=20_000)
    share = field_box(page, "train-share").input_value()
    assert share.startswith("http://") and re.search(r"\?run=\d{8}-\d{6}-[0-9a-f]{16}$", share), share
    screenshot(page, "own-domain-train")

    # Reload: the run is in the runs table under its name, with its corpus's name.
    page.reload()
    page.get_by_role("tab", name="Train").click()
    history = page.locator("#train-history")
    expect(history).to_contain_text(RUN_NAME, timeout=30_000)
    expect(history).to_contain_text("Cardiology ward notes")

    # The share link in another browser opens the Train tab on that run, read-only.
    other = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        watcher = other.new_page()
        watcher.goto(share)
        expect(watcher.locator("#train-run-info")).to_contain_text(RUN_NAME, timeout=60_000)
        expect(watcher.locator("#train-run-info")).to_contain_text("Read-only")
    finally:
        other.close()

    # Compare: the run is in the picker by name without Refresh; fill-mask on a clinical prompt,
    # perplexity on the corpus's own test split.
    page.get_by_role("tab", name="Compare").click()
    pick(page, "compare-models", RUN_NAME)
    fill(page, "fill-text", "Plan: continue [MASK] 40 mg and daily weights.")
    page.locator("#compare-btn").click()
    expect(page.locator("#compare-columns")).to_contain_text(RUN_NAME, timeout=120_000)
    page.get_by_text("Perplexity on the same eval set").click()
    pick(page, "compare-ppl-corpus", "Cardiology ward notes")
    page.get_by_role("button", name="Compute perplexity").click()
    expect(page.get_by_text(re.compile("the test split of Cardiology ward notes"))).to_be_visible(timeout=120_000)
    screenshot(page, "own-domain-compare")

    # Costs: tokens per epoch of that corpus.
    page.get_by_role("tab", name="Costs").click()
    pick(page, "costs-corpus", "Cardiology ward notes")
    page.get_by_role("button", name="Count its tokens").click()
    expect(page.get_by_text(re.compile("Cardiology ward notes, train split"))).to_be_visible(timeout=120_000)


PHONE = {"width": 390, "height": 844}


def test_phone_shows_the_run_first_and_the_costs_values(browser, app_url):
    ctx = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    try:
        page = ctx.new_page()
        page.goto(app_url + "?run=20260101-000000-0123456789abcdef")  # a share link opens the Train tab
        run_info = page.locator("#train-run-info")
        expect(run_info).to_contain_text("No run with id", timeout=60_000)
        # the run's status comes before the long form, not two screens below it
        assert run_info.bounding_box()["y"] < page.locator("#train-model").bounding_box()["y"]

        page.goto(app_url)
        page.get_by_role("tab", name="Dataset").wait_for()  # hydrated: the tab bar has folded what does not fit
        page.wait_for_timeout(500)
        tab = page.get_by_role("tab", name="Costs")
        if not tab.is_visible():
            page.get_by_role("button", name="More tabs").click()
            tab = page.locator(".overflow-dropdown button", has_text="Costs")
        tab.click()
        page.locator("#costs-estimate").click()
        cell = page.locator("#costs-table td").nth(2)  # the first row's LoRA value
        expect(cell).not_to_be_empty(timeout=120_000)
        cell.scroll_into_view_if_needed()
        box = cell.bounding_box()
        assert box and box["x"] + box["width"] <= PHONE["width"] + 1, box
    finally:
        ctx.close()
