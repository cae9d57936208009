"""The Hub path without the network: distilbert-base-uncased and stanfordnlp/imdb in a filled HF cache
(tests/hub_cache.py), offline, load as the app's online defaults would, the same code a Space runs.

HF_HUB_OFFLINE and HF_HOME are read at import, so each check runs in a subprocess with that environment.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests import hub_cache
from tests.hub_cache import DATASET_ID, MODEL_ID, MODEL_PARAMETERS, ROOT, hub_env, run_python, space_env

hub_home, cached_app_url = hub_cache.hub_home, hub_cache.cached_app_url  # fixtures (not in conftest.py)

ENGINE_CHECK = r"""
import json
from engine.offline import ensure_mode
ensure_mode()
from engine import models
from engine.compare.predictions import fill_mask
from engine.data import stats
from engine.data.corpus import CorpusConfig, load_corpus
from engine.errors import UserError
from engine.masking import MaskingConfig, preview_text

ref = models.default_model_ref()
loaded = models.load_mlm(ref)
corpus = load_corpus(CorpusConfig(source="hub", hub_id="stanfordnlp/imdb"))
check = stats.label_check(stats.label_counts(corpus))
preview = preview_text("This is a great movie.", loaded.tokenizer, MaskingConfig(mlm_probability=0.5, seed=1))
filled = fill_mask(loaded.model, loaded.tokenizer, "This is a [MASK] movie.", 5)
refused = {}
for what, call in (("model", lambda: models.resolve("someone/not-cached")),
                   ("dataset", lambda: load_corpus(CorpusConfig(source="hub", hub_id="someone/not-cached")))):
    try:
        call()
    except UserError as exc:
        refused[what] = str(exc)
print(json.dumps({
    "default": ref, "info": loaded.info.as_dict(), "splits": {k: len(v) for k, v in corpus.items()},
    "features": str(corpus["train"].features), "labels_ok": check.ok, "selected": preview.selected,
    "predictions": len(filled.masks[0]), "refused": refused,
}))
"""


def _last_json(out: subprocess.CompletedProcess) -> dict:
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cached_online_defaults_load_offline(hub_home):
    got = _last_json(run_python(ENGINE_CHECK, hub_env(hub_home)))
    assert got["default"] == MODEL_ID  # the online default, not the bundled fallback
    info = got["info"]
    assert (info["parameters"], info["model_type"], info["head_trained"]) == (MODEL_PARAMETERS, "distilbert", True)
    assert (info["layers"], info["hidden_size"], info["max_length"], info["mask_token"]) == (6, 768, 512, "[MASK]")
    assert got["splits"] == {"train": 25_000, "test": 25_000}  # unsupervised (-1 labels) left out
    assert got["labels_ok"] is True and "neg" in got["features"]
    assert got["selected"] > 0 and got["predictions"] == 5
    model_msg, dataset_msg = got["refused"]["model"], got["refused"]["dataset"]
    assert "not available offline" in model_msg and f"cached: {MODEL_ID}" in model_msg
    assert "not available offline" in dataset_msg and f"cached: {DATASET_ID}" in dataset_msg


def test_nothing_cached_keeps_the_bundled_fallback(tmp_path):
    code = ("from engine import models; from engine.offline import cached_repos; "
            "print(models.default_model_ref(), cached_repos('model'))")
    out = run_python(code, hub_env(tmp_path / "empty-home"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["bundled", "[]"]


def _engine(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)


def test_train_and_estimate_on_a_simulated_cpu_space(hub_home, tmp_path):
    data = tmp_path / "data"  # stands in for the /data storage bucket
    env = space_env(hub_home, data)
    args = ["train", "--model", MODEL_ID, "--dataset", DATASET_ID, "--max-steps", "2", "--max-docs", "200",
            "--chunk-size", "32", "--train-size", "16", "--test-size", "8", "--batch-size", "4",
            "--eval-every", "2", "--log-every", "1", "--save-every", "0"]
    out = _engine(args, env)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = [p for p in (data / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1
    status = json.loads((runs[0] / "status.json").read_text())
    config = json.loads((runs[0] / "config.json").read_text())
    assert status["state"] == "completed", status
    assert config["model"] == MODEL_ID and config["corpus"]["hub_id"] == DATASET_ID
    estimate = _engine(["estimate", "--model", MODEL_ID, "--json"], env)
    assert estimate.returncode == 0, estimate.stderr[-2000:]
    assert MODEL_ID in estimate.stdout


def test_app_serves_the_cached_defaults(cached_app_url):
    from gradio_client import Client

    client = Client(cached_app_url, verbose=False)
    stats = client.predict("hub", DATASET_ID, None, "text", "", 128, 0, api_name="/dataset_stats")
    assert stats["model"]["ref"] == MODEL_ID and stats["corpus"] == f"{DATASET_ID} (Hub)"
    assert stats["split_sizes"] == {"train": 25_000, "test": 25_000} and stats["labels_ok"] is True
    info = client.predict(MODEL_ID, "This is a great [MASK].", api_name="/model_info")
    assert f"{MODEL_PARAMETERS:,}" in json.dumps(info)


@pytest.mark.browser
def test_browser_default_model_comes_from_the_cache(cached_app_url, page):
    from playwright.sync_api import expect

    page.goto(cached_app_url)
    expect(page.locator("#mode-banner")).to_contain_text(f"{MODEL_ID} is cached and is the default model")
    page.get_by_role("tab", name="Compare").click()
    info = page.locator("#model-info")
    expect(info).to_contain_text(MODEL_ID, timeout=120_000)  # loaded on page open, from the cache
    expect(info).to_contain_text("67.0M parameters")
    page.get_by_role("tab", name="Dataset").click()
    expect(page.locator("#ds-model")).to_contain_text(f"Cached on this machine (usable offline): models: {MODEL_ID}")
