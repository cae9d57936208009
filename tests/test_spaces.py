"""spaces/: the Space card and the deploy command (no network: a fake HfApi records the calls)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "spaces" / "deploy.py"


def _load_deploy():
    spec = importlib.util.spec_from_file_location("spaces_deploy", DEPLOY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


deploy = _load_deploy()


class FakeApi:
    """Stands in for huggingface_hub.HfApi: records every call, uploads nothing."""

    def __init__(self, fail_on: str | None = None):
        self.calls: list[tuple[str, tuple, dict]] = []
        self.fail_on = fail_on

    def __getattr__(self, name):
        def record(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            if name == self.fail_on:
                raise ConnectionError("no route to huggingface.co")

        return record

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)


def run_main(argv, api, capsys):
    code = deploy.main(argv, api=api)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_card_front_matter_matches_pinned_gradio():
    meta = deploy.read_front_matter(deploy.CARD)
    pinned = deploy.pinned_gradio()
    assert meta["sdk"] == "gradio"
    assert meta["sdk_version"] == pinned
    assert meta["app_file"] == "app.py" and (ROOT / meta["app_file"]).exists()
    assert meta["python_version"] == "3.11"
    assert meta["suggested_hardware"] in deploy.hardware_names()
    assert {"distilbert-base-uncased", "sentence-transformers/all-MiniLM-L6-v2"} <= set(meta["models"])
    assert "stanfordnlp/imdb" in meta["datasets"]
    assert [entry.split()[0] for entry in meta["preload_from_hub"]] == ["distilbert-base-uncased"]
    assert len(meta["short_description"]) <= 60 and meta["license"]
    deploy.validate_front_matter(meta, deploy.CARD, pinned)  # raises on any problem


def test_pinned_gradio_reads_requirements(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("torch==2.13.0\ngradio==9.9.9  # pinned\nplotly\n")
    assert deploy.pinned_gradio(req) == "9.9.9"
    req.write_text("gradio>=6\n")
    with pytest.raises(deploy.DeployError, match="does not pin gradio"):
        deploy.pinned_gradio(req)


def test_dry_run_builds_the_upload_folder(tmp_path):
    out = tmp_path / "space"
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    proc = subprocess.run(
        [sys.executable, str(DEPLOY), "--repo", "alice/mlm-studio", "--hardware", "cpu-upgrade", "--dry-run",
         "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "nothing uploaded" in proc.stdout
    for rel in ("app.py", "requirements.txt", "README.md", "engine/__init__.py", "components/__init__.py"):
        assert (out / rel).is_file(), rel
    shipped = [p.relative_to(out).parts for p in out.rglob("*")]
    for banned in (".venv", "tests", "bench", ".git", "__pycache__", "spaces"):
        assert not any(banned in parts for parts in shipped), banned
    assert not (out / "runs").exists() and (out / "engine" / "runs" / "__init__.py").is_file()  # a package ships
    assert not list(out.rglob("*.pyc"))
    meta = deploy.read_front_matter(out / "README.md")
    assert meta["sdk_version"] == deploy.pinned_gradio()
    assert meta["suggested_hardware"] == "cpu-upgrade"  # the --hardware hint replaces the card's
    assert "# MLM Studio" in (out / "README.md").read_text()  # the body for visitors survives


def test_build_skips_caches_and_local_state(monkeypatch, tmp_path):
    """A repo tree full of junk (venv, runs, caches, tests) ships only the runtime files."""
    repo = tmp_path / "repo"
    for rel in ("app.py", "requirements.txt", "engine/__init__.py", "engine/__pycache__/data.cpython-311.pyc",
                "engine/stale.pyc", "components/__init__.py", "components/screenshots/tab.png",
                "engine/runs/r1/config.json", ".venv/bin/python", "runs/r1/status.json", "tests/test_x.py",
                "bench/load.py", ".git/HEAD"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("x")
    (repo / "requirements.txt").write_text((ROOT / "requirements.txt").read_text())
    monkeypatch.setattr(deploy, "ROOT", repo)
    out = deploy.build_folder(tmp_path / "out")
    shipped = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert shipped == ["README.md", "app.py", "components/__init__.py", "engine/__init__.py", "requirements.txt"]


def test_no_token_stops_before_upload(no_token, tmp_path, capsys):
    api = FakeApi()
    code, _, err = run_main(["--repo", "alice/mlm-studio", "--out", str(tmp_path / "o")], api, capsys)
    assert code == 2
    assert "No Hugging Face token" in err and "HF_TOKEN" in err and "hf auth login" in err
    assert api.calls == [] and not (tmp_path / "o").exists()


def test_no_token_from_the_command_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env["HF_HOME"] = str(tmp_path / "hf-home")  # no saved login there
    proc = subprocess.run([sys.executable, str(DEPLOY), "--repo", "alice/mlm-studio"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "No Hugging Face token" in proc.stderr and "Nothing was uploaded" in proc.stderr


@pytest.mark.parametrize("repo", ["mlm-studio", "/mlm-studio", "alice/"])
def test_repo_without_user_part(repo, tmp_path, capsys):
    api = FakeApi()
    code, _, err = run_main(["--repo", repo, "--token", "hf_x", "--out", str(tmp_path / "o")], api, capsys)
    assert code == 2
    assert "needs a user" in err and "<user>/<name>" in err
    assert api.calls == []


def test_invalid_repo_name(tmp_path, capsys):
    api = FakeApi()
    code, _, err = run_main(["--repo", "alice/bad--name", "--token", "hf_x"], api, capsys)
    assert code == 2 and "not valid" in err and api.calls == []


def test_unknown_hardware_lists_valid_names(tmp_path, capsys):
    api = FakeApi()
    code, _, err = run_main(["--repo", "alice/mlm", "--hardware", "t5-huge", "--token", "hf_x"], api, capsys)
    assert code == 2
    assert "Unknown hardware 't5-huge'" in err
    for valid in ("cpu-basic", "t4-small", "a10g-small", "zero-a10g"):
        assert valid in err
    assert api.calls == []


BROKEN_CARDS = {
    "yaml": ("---\ntitle: [MLM Studio\nsdk: gradio\n---\nbody\n", "does not parse as YAML"),
    "missing": ("# MLM Studio\nno front matter\n", "must start with YAML front matter"),
    "version": ("---\ntitle: X\nemoji: 🎭\ncolorFrom: red\ncolorTo: blue\nsdk: gradio\nsdk_version: 1.0.0\n"
                "app_file: app.py\npython_version: \"3.11\"\n---\n", "differs from gradio=="),
    "python": ("---\ntitle: X\nemoji: 🎭\ncolorFrom: red\ncolorTo: blue\nsdk: gradio\nsdk_version: {v}\n"
               "app_file: app.py\npython_version: 3.10\n---\n", "python_version must be a quoted string"),
    "not-a-mapping": ("---\n- just\n- a list\n---\n", "must be a mapping"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_CARDS))
def test_broken_front_matter_stops_before_upload(case, monkeypatch, tmp_path, capsys):
    text, message = BROKEN_CARDS[case]
    card = tmp_path / "README.md"
    card.write_text(text.replace("{v}", deploy.pinned_gradio()))
    monkeypatch.setattr(deploy, "CARD", card)
    api = FakeApi()
    code, _, err = run_main(["--repo", "alice/mlm", "--token", "hf_x", "--out", str(tmp_path / "o")], api, capsys)
    assert code == 2 and message in err, err
    assert api.calls == []


def test_out_dir_with_old_files_is_refused(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "secret.txt").write_text("left over")
    api = FakeApi()
    code, _, err = run_main(["--repo", "alice/mlm", "--token", "hf_x", "--out", str(out)], api, capsys)
    assert code == 2 and "is not empty" in err and api.calls == []


def test_deploy_creates_the_space_then_uploads(tmp_path, capsys):
    api = FakeApi()
    out = tmp_path / "o"
    code, stdout, _ = run_main(["--repo", "alice/mlm", "--token", "hf_x", "--private", "--out", str(out)], api, capsys)
    assert code == 0 and "https://huggingface.co/spaces/alice/mlm" in stdout
    assert api.names() == ["create_repo", "upload_folder"]
    (_, args, kwargs), (_, _, upload) = api.calls
    assert args == ("alice/mlm",)
    assert kwargs | {"token": None} == {"repo_type": "space", "space_sdk": "gradio", "private": True,
                                        "exist_ok": True, "token": None}
    assert kwargs["token"] == "hf_x"
    assert upload["repo_id"] == "alice/mlm" and upload["repo_type"] == "space"
    assert Path(upload["folder_path"]) == out and (out / "app.py").is_file()
    for pattern in (".venv/*", "runs/*", "tests/*", "*__pycache__*", "*.pyc", ".git/*"):
        assert pattern in upload["ignore_patterns"]


def test_deploy_with_hardware_and_bucket(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    api = FakeApi()
    argv = ["--repo", "alice/mlm", "--hardware", "t4-small", "--bucket", "alice/mlm-runs", "--out", str(tmp_path / "o")]
    code, _, _ = run_main(argv, api, capsys)
    assert code == 0
    assert api.names() == ["create_repo", "upload_folder", "request_space_hardware", "create_bucket",
                           "set_space_volumes"]
    assert api.calls[2][1] == ("alice/mlm", "t4-small")
    assert api.calls[0][2]["token"] == "hf_from_env"
    (volume,) = api.calls[4][1][1]
    assert (volume.type, volume.source, volume.mount_path) == ("bucket", "alice/mlm-runs", "/data")


def test_hub_failure_is_one_clear_message(tmp_path, capsys):
    api = FakeApi(fail_on="request_space_hardware")
    argv = ["--repo", "alice/mlm", "--hardware", "a100-large", "--token", "hf_x", "--out", str(tmp_path / "o")]
    code, _, err = run_main(argv, api, capsys)
    assert code == 1
    assert "requesting a100-large" in err and "no route to huggingface.co" in err
    assert "uploaded" in err and "Space settings" in err
    assert "Traceback" not in err


def test_unshipped_local_import_is_caught(tmp_path):
    (tmp_path / "app.py").write_text("from engine.models import load_mlm\nimport os\n")
    with pytest.raises(deploy.DeployError, match="imports engine"):
        deploy.check_local_imports(tmp_path)
    (tmp_path / "engine").mkdir()
    deploy.check_local_imports(tmp_path)  # shipped now: no error


def test_a_shipped_package_without_its_submodule_is_caught(tmp_path):
    """engine/runs/ was once dropped by a copy rule meant for run folders: the Space died at import."""
    (tmp_path / "app.py").write_text("from engine.runs import jobs\nfrom engine.models import load_mlm\n")
    for rel in ("engine/__init__.py", "engine/models.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    with pytest.raises(deploy.DeployError, match="engine.runs"):
        deploy.check_local_imports(tmp_path)
    (tmp_path / "engine" / "runs").mkdir()
    (tmp_path / "engine" / "runs" / "__init__.py").write_text("")
    deploy.check_local_imports(tmp_path)
