"""Shared fixtures: offline mode, a private cache and runs folder, tiny local models,
a launched app for gradio_client, and Debian's chromium for Playwright.

Shared helpers, imported by the tests as `from tests.conftest import ...` (a worker process
imports tests.test_jobs, where only the package path resolves): `tiny_settings` /
`tiny_config` (a run of a few seconds on 200 bundled reviews), `write_run` (a run folder
written by hand) and `wait_until` (a polling loop with a hang guard).

Nothing here touches the network: HF_HUB_OFFLINE is set before transformers loads.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
# A private cache and runs folder, made only when not given: a worker process that imports
# these helpers (through tests.test_jobs) inherits the test session's folders.
if not {"MLM_CACHE_DIR", "MLM_RUNS_DIR", "MLM_CORPORA_DIR"} <= set(os.environ):
    _TMP = Path(tempfile.mkdtemp(prefix="mlm-tests-"))
    os.environ.setdefault("MLM_CACHE_DIR", str(_TMP / "cache"))
    os.environ.setdefault("MLM_RUNS_DIR", str(_TMP / "runs"))
    os.environ.setdefault("MLM_CORPORA_DIR", str(_TMP / "corpora"))
    # An empty Hugging Face cache: "offline" tests must not depend on what this machine has cached.
    os.environ.setdefault("HF_HOME", str(_TMP / "hf-home"))

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
APP_ADMIN_TOKEN = "admin-token-of-the-test-app"  # MLM_ADMIN_TOKEN of the app_url server
SMALL_CORPUS = {"source": "imdb", "max_docs": 200, "test_fraction": 0.1, "seed": 0}  # split 180/20
TINY_RUN = {"chunk_size": 32, "train_size": 64, "test_size": 16, "batch_size": 8, "max_steps": 4, "log_every": 1,
            "eval_every": 0, "save_every": 0, "learning_rate": 1e-3}


# ---------------------------------------------------------------- helpers


def tiny_settings(model_dir: str, **changes) -> dict:
    """TrainConfig fields of a tiny run, as JSON would carry them (the corpus as a dict). Not
    validated, so an API test can send a bad value and read the server's message."""
    return {"model": model_dir, "corpus": dict(SMALL_CORPUS), **TINY_RUN, **changes}


def tiny_config(model_dir: str, **changes):
    """The TrainConfig of a tiny run: a few seconds on CPU with the tiny models below."""
    from engine.data.corpus import CorpusConfig
    from engine.training.config import TrainConfig

    settings = tiny_settings(model_dir, **changes)
    if isinstance(settings["corpus"], dict):
        settings["corpus"] = CorpusConfig(**settings["corpus"])
    return TrainConfig(**settings)


def write_run(root: Path, run_id: str, config: dict, status: dict, summary: dict | None = None) -> Path:
    """A run folder written by hand: config.json, status.json and (when given) summary.json."""
    folder = Path(root) / run_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "status.json").write_text(json.dumps(status))
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def wait_until(check, timeout: float = 180, every: float = 0.2, what: str = "condition"):
    """Call check() every `every` seconds until it returns something truthy, and return that;
    fail after `timeout` seconds (a hang guard: no test asserts a wall-clock time)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what} not met within {timeout} s")


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """A 2-layer, hidden-32 BERT MLM with the bundled WordPiece tokenizer."""
    from engine.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-bert"), "bert")


@pytest.fixture(scope="session")
def tiny_distilbert_dir(tmp_path_factory) -> str:
    from engine.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-distilbert"), "distilbert")


@pytest.fixture(scope="session")
def tiny_modernbert_dir(tmp_path_factory) -> str:
    """A 3-layer, hidden-32 ModernBERT (global, local, local attention; 8,192 positions)."""
    from engine.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-modernbert"), "modernbert")


@pytest.fixture(scope="session")
def tiny_eurobert_dir(tmp_path_factory) -> str:
    """A 2-layer, hidden-32 EuroBERT (Llama-style: grouped-query attention, SwiGLU, RMSNorm)."""
    from engine.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-eurobert"), "eurobert")


@pytest.fixture(scope="session")
def tokenizer():
    from engine.models import load_tokenizer

    return load_tokenizer("bundled")


@pytest.fixture(scope="session")
def small_corpus():
    """200 bundled IMDb reviews split 180/20: enough for chunking and a short run."""
    from engine.data.corpus import CorpusConfig

    return CorpusConfig(**SMALL_CORPUS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_runs_dir(tmp_path_factory) -> Path:
    """The launched app's runs folder: tests may put hand-built runs in it (it is read per request)."""
    return tmp_path_factory.mktemp("app-runs")


@pytest.fixture(scope="session")
def app_url(tmp_path_factory, app_runs_dir):
    """The real app, launched as `python app.py` in a subprocess on a free port."""
    port = free_port()
    env = dict(os.environ, PORT=str(port), MLM_RUNS_DIR=str(app_runs_dir), MLM_ADMIN_TOKEN=APP_ADMIN_TOKEN)
    log = open(tmp_path_factory.mktemp("app-log") / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"

    def listening() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited early, see {log.name}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    try:
        wait_until(listening, timeout=180, every=0.5, what="the app listening")
    except AssertionError:
        proc.kill()
        raise RuntimeError("app did not start within 180 s") from None
    time.sleep(1.0)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Debian chromium not found at {CHROMIUM}: install the 'chromium' package (see .ci/run).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    yield pg
    ctx.close()
