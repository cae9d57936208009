"""Before any result, every table shows its real column names, never Gradio's placeholder
"1 2 3" (a new user read that as broken)."""

from __future__ import annotations

import pytest

VISIBLE_HEADERS_JS = """() => Array.from(document.querySelectorAll('table thead'))
  .filter(t => t.offsetParent !== null)
  .map(t => Array.from(t.querySelectorAll('th')).map(th => th.innerText.trim()))"""


@pytest.mark.browser
@pytest.mark.parametrize("tab, expected", [
    ("Dataset", ["split", "documents"]),
    ("Masking", ["kind", "tokens", "share of selected", "setting"]),
    ("Compare", ["mask", "rank", "token", "probability", "sequence"]),
    ("Costs", ["", "Full fine-tuning", "LoRA"]),
])
def test_empty_tables_show_their_column_names(page, app_url, tab, expected):
    page.goto(app_url)
    page.get_by_role("tab", name=tab).click()
    page.wait_for_function(f"() => ({VISIBLE_HEADERS_JS})().length > 0", timeout=30_000)
    headers = page.evaluate(VISIBLE_HEADERS_JS)
    assert expected in headers
    assert not [h for h in headers if h[:3] == ["1", "2", "3"]], headers
