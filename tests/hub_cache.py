"""A Hugging Face cache filled the way a download (or a Space's `preload_from_hub`) fills it, built offline.

`fill_hub_cache(home)` writes, under `home` (used as HF_HOME):

- `hub/models--distilbert-base-uncased/`: blobs/, snapshots/<rev>/ (symlinks to the blobs) and refs/main,
  with the model's real config.json (engine/costs/arch_configs), the bert-base-uncased WordPiece
  tokenizer (the bundled MiniLM tokenizer has the same vocabulary; saved with save_pretrained and
  set to DistilBERT's 512 tokens, no truncation) and random weights (model.safetensors);
- `hub/datasets--stanfordnlp--imdb/`: README.md with the dataset card's YAML (config plain_text,
  `text` string, `label` ClassLabel neg/pos) and plain_text/{train,test,unsupervised}-00000-of-00001.parquet
  built from the bundled IMDb CSV. Stand-ins, not the real reviews: train is the 25,000 bundled
  reviews, test the same reviews shuffled (the bundle has no others), unsupervised a smaller sample
  with label -1 (the real one has 50,000).

datasets 5.2 offline never reads this hub snapshot itself (load_dataset("stanfordnlp/imdb") offline
looks only for an earlier load's prepared Arrow files under HF_HOME/datasets); engine.data.corpus
loads the snapshot folder instead. HF_HUB_OFFLINE and HF_HOME are read at import, so code that
uses this cache runs in a subprocess with `hub_env(home)`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODEL_ID = "distilbert-base-uncased"
DATASET_ID = "stanfordnlp/imdb"
MODEL_PARAMETERS = 66_985_530  # DistilBertForMaskedLM, as the course prints it
UNSUPERVISED_ROWS = 1_000

DATASET_CARD = """---
dataset_info:
  config_name: plain_text
  features:
  - name: text
    dtype: string
  - name: label
    dtype:
      class_label:
        names:
          '0': neg
          '1': pos
configs:
- config_name: plain_text
  data_files:
  - split: train
    path: plain_text/train-*
  - split: test
    path: plain_text/test-*
  - split: unsupervised
    path: plain_text/unsupervised-*
  default: true
---

# IMDb (offline stand-in built by tests/hub_cache.py from the bundled reviews)
"""


def _revision(files: dict[str, Path]) -> str:
    """A 40-hex commit id derived from the files, as stable as a real one."""
    h = hashlib.sha1()
    for name in sorted(files):
        h.update(name.encode())
        h.update(hashlib.sha256(files[name].read_bytes()).digest())
    return h.hexdigest()


def put_snapshot(hub: Path, repo_type: str, repo_id: str, files: dict[str, Path]) -> Path:
    """Lay `files` (path in repo -> local file) out as a download does: blobs + snapshot symlinks + refs/main."""
    repo = hub / f"{repo_type}s--{repo_id.replace('/', '--')}"
    rev = _revision(files)
    snapshot = repo / "snapshots" / rev
    for name, src in files.items():
        blob = repo / "blobs" / hashlib.sha256(src.read_bytes()).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, blob)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(rev)
    return snapshot


def _model_files(work: Path) -> dict[str, Path]:
    import torch
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForMaskedLM

    from engine.models import bundled_dir

    config = ROOT / "engine" / "costs" / "arch_configs" / f"{MODEL_ID}.json"
    tok_dir = work / "tokenizer"
    AutoTokenizer.from_pretrained(str(bundled_dir())).save_pretrained(tok_dir)
    tok_json = json.loads((tok_dir / "tokenizer.json").read_text())
    tok_json["truncation"] = tok_json["padding"] = None  # as distilbert's own tokenizer.json
    (tok_dir / "tokenizer.json").write_text(json.dumps(tok_json))
    (tok_dir / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 512}))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = DistilBertForMaskedLM(DistilBertConfig.from_dict(json.loads(config.read_text())))
    model.save_pretrained(work / "weights")
    return {"config.json": config, "model.safetensors": work / "weights" / "model.safetensors",
            "vocab.txt": bundled_dir() / "vocab.txt",  # transformers 5 saves no vocab.txt for a fast tokenizer
            **{n: tok_dir / n for n in ("tokenizer.json", "tokenizer_config.json")}}


def _dataset_files(work: Path) -> dict[str, Path]:
    from datasets import ClassLabel, Dataset, Features, Value

    from engine.data.corpus import _bundled_frame

    frame = _bundled_frame()
    imdb = frame[frame["source"] == "imdb"].reset_index(drop=True)
    features = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    splits = {
        "train": imdb,
        "test": imdb.sample(frac=1.0, random_state=0),
        "unsupervised": imdb.sample(n=UNSUPERVISED_ROWS, random_state=1).assign(label=-1),
    }
    files = {"README.md": work / "README.md"}
    files["README.md"].write_text(DATASET_CARD)
    for name, part in splits.items():
        path = work / f"{name}.parquet"
        ds = Dataset.from_dict({"text": part["text"].tolist(), "label": part["label"].tolist()}, features=features)
        ds.to_parquet(str(path))
        files[f"plain_text/{name}-00000-of-00001.parquet"] = path
    return files


def fill_hub_cache(home: Path) -> Path:
    """Fill HF_HOME=`home` with distilbert-base-uncased and stanfordnlp/imdb; return `home`."""
    hub = home / "hub"
    with tempfile.TemporaryDirectory(prefix="hub-cache-src-") as tmp:
        work = Path(tmp)
        (work / "m").mkdir()
        (work / "d").mkdir()
        put_snapshot(hub, "model", MODEL_ID, _model_files(work / "m"))
        put_snapshot(hub, "dataset", DATASET_ID, _dataset_files(work / "d"))
    return home


def hub_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a subprocess that sees this cache, offline, with its own runs/corpora/token caches."""
    env = dict(os.environ, HF_HOME=str(home), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "TRANSFORMERS_CACHE"):
        env.pop(var, None)  # they would override HF_HOME
    env.update(MLM_CACHE_DIR=str(home / "mlm-cache"), MLM_RUNS_DIR=str(home / "runs"),
               MLM_CORPORA_DIR=str(home / "corpora"), PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


def space_env(home: Path, data: Path, **extra: str) -> dict[str, str]:
    """hub_env as on a CPU Space: SPACE_ID and the hardware variables, runs and corpora under a writable
    folder standing in for the /data bucket (engine.run_folder / engine.data.store read MLM_RUNS_DIR and
    MLM_CORPORA_DIR first)."""
    return hub_env(home, SPACE_ID="tester/mlm-studio", SPACE_HOST="tester-mlm-studio.hf.space",
                   SYSTEM="spaces", ACCELERATOR="cpu", CPU_CORES="2", MEMORY="16Gi",
                   MLM_RUNS_DIR=str(data / "runs"), MLM_CORPORA_DIR=str(data / "corpora"),
                   GRADIO_SERVER_NAME="127.0.0.1", **extra)


def run_python(code: str, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="session")
def hub_home(tmp_path_factory) -> Path:
    """HF_HOME with distilbert-base-uncased and stanfordnlp/imdb cached (built once per session)."""
    return fill_hub_cache(tmp_path_factory.mktemp("hf-home"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def space_folder(dest: Path) -> Path:
    """The folder spaces/deploy.py uploads (app.py, engine/, components/, the card as README.md).

    The app runs from there as on a Space: in the repository root, the spaces/ folder would shadow
    the `spaces` package that Gradio imports when SYSTEM=spaces (it calls spaces.gradio_auto_wrap).
    """
    import importlib.util

    spec = importlib.util.spec_from_file_location("spaces_deploy", ROOT / "spaces" / "deploy.py")
    deploy = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))
    spec.loader.exec_module(deploy)
    return deploy.build_folder(dest)


@pytest.fixture(scope="session")
def cached_app_url(hub_home, tmp_path_factory):
    """`python app.py` in a subprocess, offline, seeing the filled cache, from the deployed folder of a CPU Space."""
    port = _free_port()
    data = tmp_path_factory.mktemp("space-data")
    folder = space_folder(tmp_path_factory.mktemp("space-repo") / "app")
    env = space_env(hub_home, data, PORT=str(port), PYTHONPATH=str(folder))
    log = open(tmp_path_factory.mktemp("cached-app-log") / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited early, see {log.name}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError(f"app did not start within 240 s, see {log.name}")
    time.sleep(1.0)
    yield f"http://127.0.0.1:{port}/"
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
