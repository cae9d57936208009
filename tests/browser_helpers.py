"""Small Playwright helpers shared by the browser tests (tests/test_browser_*.py).

They follow tests/test_browser_train.py: Gradio reads a field on change/blur, a run id is
found in the Train tab's run panel, and the loss chart's steps are read from plotly's
decoded data (plotly.py sends numpy columns base64-encoded, so the DOM alone is not enough).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Test runs must leave tracked files alone: screenshots go to the ignored artifacts/ folder,
# and the README's pictures (docs/screenshots/) are refreshed only when asked for.
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
DOC_SCREENSHOTS = ROOT / "docs" / "screenshots"
RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{16}")

LOSS_STEPS_JS = """() => {
  const gd = document.querySelector('#train-loss-plot .js-plotly-plot');
  if (!gd || !gd._fullData || !gd._fullData.length || !gd._fullData[0].x) return 0;
  return Math.max(0, ...Array.from(gd._fullData[0].x));
}"""
LOSS_POINTS_JS = """() => {
  const gd = document.querySelector('#train-loss-plot .js-plotly-plot');
  if (!gd || !gd._fullData || !gd._fullData.length || !gd._fullData[0].x) return 0;
  return gd._fullData[0].x.length;
}"""


def open_tab(page, url: str, name: str, ready: str) -> None:
    """Open the app, switch to a tab (the click waits for the page to hydrate) and wait for `ready`."""
    page.goto(url)
    page.get_by_role("tab", name=name).click()
    page.locator(ready).first.wait_for()


def field_box(page, elem_id: str):
    return page.locator(f"#{elem_id}").locator("input, textarea").first


def fill(page, elem_id: str, value) -> None:
    box = field_box(page, elem_id)
    box.fill(str(value))
    box.press("Tab")  # commit the value (Gradio reads it on change/blur)


def fill_form(page, values: dict[str, object], rounds: int = 5) -> None:
    """Fill several fields, then read them all back and fill again any that lost its value.

    A field in an accordion opened just before can be re-rendered with its old value right
    after Playwright typed into it (a CI run started a 24-step run instead of a 5,000-step one
    that way), so typing once is not proof the form holds the value."""
    for elem_id, value in values.items():
        fill(page, elem_id, value)
    for _ in range(rounds):
        page.wait_for_timeout(200)  # give a late re-render the chance to happen before we look
        lost = {k: v for k, v in values.items() if field_box(page, k).input_value() != str(v)}
        if not lost:
            return
        for elem_id, value in lost.items():
            fill(page, elem_id, value)
    raise AssertionError(f"the form kept losing these values: {sorted(lost)}")


def fill_tiny_run_form(page, model_dir: str, eval_every: int = 5, max_steps: int = 5_000) -> dict:
    """The Train form for a tiny run on 200 documents that lasts as long as a test needs
    (many steps: the test cancels it). Returns the settings the run's config.json must show."""
    page.get_by_text("Data and masking").click()
    page.get_by_text("Optimisation").click()
    field_box(page, "train-max-steps").wait_for()
    fill_form(page, {"train-model": model_dir, "train-max-docs": 200, "train-chunk": 32, "train-train-size": 64,
                     "train-test-size": 16, "train-max-steps": max_steps, "train-batch": 8, "train-log-every": 1,
                     "train-eval-every": eval_every, "train-lr": 0.001})
    return {"model": model_dir, "chunk_size": 32, "train_size": 64, "test_size": 16, "max_steps": max_steps,
            "batch_size": 8, "log_every": 1, "eval_every": eval_every, "learning_rate": 0.001}


def assert_run_config(folder: Path, expected: dict) -> None:
    """The run on disk was started with the settings the test typed (not a default that slipped in)."""
    import json

    config = json.loads((Path(folder) / "config.json").read_text())
    got = {k: config.get(k) for k in expected}
    assert got == expected, f"the run was started with {got}, the form was filled with {expected}"


def fill_visible_label(page, label: str, value) -> None:
    """A field without an elem_id, found by its label among the widgets now on screen."""
    box = page.get_by_label(label, exact=True).filter(visible=True).first
    box.fill(str(value))
    box.press("Tab")


def run_id_on_page(page, timeout: int = 60_000) -> str:
    page.wait_for_function(
        "() => /\\d{8}-\\d{6}-[0-9a-f]{16}/.test(document.querySelector('#train-run-info')?.innerText || '')",
        timeout=timeout)
    return RUN_ID.search(page.locator("#train-run-info").inner_text()).group(0)


def wait_state(page, state: str, timeout: int = 60_000) -> None:
    page.wait_for_function(
        f"() => document.querySelector('#train-progress')?.dataset.state === '{state}'", timeout=timeout)


def wait_loss_step_above(page, step: float, timeout: int = 60_000) -> float:
    page.wait_for_function(f"() => ({LOSS_STEPS_JS})() > {step}", timeout=timeout)
    return page.evaluate(LOSS_STEPS_JS)


def run_state_on_disk(folder: Path) -> str:
    """The run's state and last logged train step as its folder says (for failure messages)."""
    import json

    status = json.loads((folder / "status.json").read_text())
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = [r["step"] for r in rows if r.get("kind") == "train"]
    return f"{status.get('state')} ({status.get('message')}), last train step on disk {max(steps, default=0)}"


def wait_chart_moves(page, folder: Path, above: float, timeout: int = 60_000) -> float:
    """Wait until the loss chart shows a step above `above`; on a timeout say where the run is on disk,
    so a stalled worker and a page that stopped updating read differently."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        return wait_loss_step_above(page, above, timeout)
    except PlaywrightTimeout:
        chart = page.evaluate(LOSS_STEPS_JS)
        raise AssertionError(f"loss chart stuck at step {chart} (waited for > {above}); "
                             f"run: {run_state_on_disk(folder)}") from None


def run_folders(runs_dir: Path) -> set[str]:
    return {p.name for p in Path(runs_dir).iterdir() if p.is_dir()}


def screenshot(page, name: str, full_page: bool = True) -> Path:
    """A screenshot (full page unless told) into artifacts/screenshots/<name>.png; with
    MLM_UPDATE_SCREENSHOTS=1 it is also copied to docs/screenshots/, which the README shows."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.wait_for_timeout(300)  # let plotly finish its transitions before the picture
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 10_000, f"{path} looks empty"
    if os.environ.get("MLM_UPDATE_SCREENSHOTS") == "1":
        DOC_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOC_SCREENSHOTS / path.name)
    return path
