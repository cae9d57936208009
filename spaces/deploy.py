"""Deploy MLM Studio to a Hugging Face Space in one command.

    python spaces/deploy.py --repo <user>/<name> [--hardware t4-small] [--private]
                            [--bucket <user>/<bucket>] [--token hf_...] [--dry-run] [--out DIR]

It builds the exact folder it uploads (app.py, engine/, components/, requirements.txt and
spaces/README.md as the Space card), checks everything it can offline (repo id, hardware
name, token, card front matter, gradio version), and only then talks to the Hub:
create_repo(space_sdk="gradio") -> upload_folder -> optional hardware and /data bucket.
`--dry-run` stops after the build and prints the folder, so tests and curious users can
look at exactly what would go up. This file imports nothing from the app (no torch).
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CARD = ROOT / "spaces" / "README.md"

# What the app needs at runtime, relative to the repository root.
RUNTIME_PATHS = ("app.py", "engine", "components", "requirements.txt")
# Never uploaded: copytree skips these names, upload_folder skips these patterns (belt and braces
# for a reused --out folder).
IGNORED_NAMES = (".venv", "venv", "__pycache__", "*.pyc", ".git", "tests", "bench", ".cache",
                 ".pytest_cache", ".ruff_cache", "artifacts", "screenshots", "*.egg-info", ".DS_Store")
IGNORE_PATTERNS = [".venv/*", "venv/*", "runs/*", "*__pycache__*", "*.pyc", ".git/*", "tests/*", "bench/*",
                   ".cache/*", ".pytest_cache/*", ".ruff_cache/*", "artifacts/*", "*screenshots/*",
                   "*.egg-info/*", "*.DS_Store"]
SPACE_COLORS = ("red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray")
REQUIRED_KEYS = ("title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "app_file", "python_version")
LIST_KEYS = ("models", "datasets", "preload_from_hub", "tags")
MAX_SHORT_DESCRIPTION = 60  # the Hub rejects longer ones


class DeployError(Exception):
    """Input the user must fix; printed as one message, exit status 2."""


class HubError(Exception):
    """The Hub refused or could not be reached; printed as one message, exit status 1."""


@dataclass
class Options:
    repo: str
    hardware: str | None = None
    private: bool = False
    token: str | None = None
    bucket: str | None = None
    dry_run: bool = False
    out: Path | None = None


def hardware_names() -> list[str]:
    from huggingface_hub import SpaceHardware

    return [h.value for h in SpaceHardware]


def pinned_gradio(requirements: Path | None = None) -> str:
    """The version after `gradio==` in requirements.txt (the Space's sdk_version must equal it)."""
    requirements = requirements or ROOT / "requirements.txt"
    for line in requirements.read_text().splitlines():
        match = re.fullmatch(r"\s*gradio\s*==\s*([\w.+-]+)\s*(#.*)?", line)
        if match:
            return match.group(1)
    raise DeployError(
        f"{requirements} does not pin gradio (a line `gradio==X.Y.Z`); the Space needs the exact version."
    )


def check_repo_id(repo: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    user, _, name = (repo or "").partition("/")
    if not user or not name:
        raise DeployError(
            f"Repo id {repo!r} needs a user (or organisation) part: "
            "use --repo <user>/<name>, e.g. --repo alice/mlm-studio."
        )
    try:
        validate_repo_id(repo)
    except HFValidationError as exc:
        raise DeployError(f"Repo id {repo!r} is not valid: {exc}") from None


def check_hardware(hardware: str | None) -> None:
    if hardware is not None and hardware not in hardware_names():
        raise DeployError(f"Unknown hardware {hardware!r}. Valid names: {', '.join(hardware_names())}.")


def resolve_token(explicit: str | None) -> str:
    """--token, else HF_TOKEN, else the token saved by `hf auth login`."""
    from huggingface_hub import get_token

    token = explicit or os.environ.get("HF_TOKEN") or get_token()
    if not token:
        raise DeployError(
            "No Hugging Face token: pass --token hf_..., set HF_TOKEN, or run `hf auth login` "
            "(a token with write access, from https://huggingface.co/settings/tokens). Nothing was uploaded."
        )
    return token


def read_front_matter(card: Path) -> dict:
    """The card's YAML block as a dict, with a clear error when it is missing or broken."""
    import yaml
    from huggingface_hub.repocard import REGEX_YAML_BLOCK

    text = card.read_text(encoding="utf-8-sig")
    match = REGEX_YAML_BLOCK.search(text)
    if not match or match.start() != 0:
        raise DeployError(f"{card} must start with YAML front matter between two `---` lines.")
    try:
        data = yaml.safe_load(match.group(2))
    except yaml.YAMLError as exc:
        raise DeployError(f"The front matter of {card} does not parse as YAML: {exc}") from None
    if not isinstance(data, dict):
        raise DeployError(f"The front matter of {card} must be a mapping of `key: value` lines.")
    return data


def validate_front_matter(meta: dict, card: Path, gradio_version: str) -> None:
    """Check what the Hub checks on upload (plus our own pin), so a bad card never reaches it."""
    missing = [k for k in REQUIRED_KEYS if meta.get(k) in (None, "")]
    problems = [f"missing {', '.join(missing)}"] if missing else []
    if meta.get("sdk") != "gradio":
        problems.append(f"sdk must be gradio, got {meta.get('sdk')!r}")
    if str(meta.get("sdk_version")) != gradio_version:
        problems.append(
            f"sdk_version {meta.get('sdk_version')!r} differs from gradio=={gradio_version} in requirements.txt"
        )
    if not isinstance(meta.get("python_version"), str):
        problems.append("python_version must be a quoted string such as \"3.11\" (unquoted 3.10 reads as 3.1)")
    for key in ("colorFrom", "colorTo"):
        if key in meta and meta[key] not in SPACE_COLORS:
            problems.append(f"{key} must be one of {', '.join(SPACE_COLORS)}")
    for key in LIST_KEYS:
        if key in meta and not (isinstance(meta[key], list) and all(isinstance(v, str) for v in meta[key])):
            problems.append(f"{key} must be a list of strings")
    if len(str(meta.get("short_description", ""))) > MAX_SHORT_DESCRIPTION:
        problems.append(f"short_description is longer than {MAX_SHORT_DESCRIPTION} characters")
    hw = meta.get("suggested_hardware")
    if hw is not None and hw not in hardware_names():
        problems.append(f"suggested_hardware {hw!r} is not a known hardware name")
    if problems:
        raise DeployError(f"Front matter of {card}: " + "; ".join(problems) + ".")


def build_folder(dest: Path, card: Path | None = None, hardware: str | None = None) -> Path:
    """Copy the runtime files into `dest` and write README.md (the card, with the hardware hint)."""
    from huggingface_hub import metadata_save

    card = card or CARD
    meta = read_front_matter(card)
    validate_front_matter(meta, card, pinned_gradio())
    check_out_dir(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for rel in RUNTIME_PATHS:
        src, target = ROOT / rel, dest / rel
        if src.is_dir():
            shutil.copytree(src, target, ignore=_ignored, dirs_exist_ok=True)
        else:
            shutil.copy2(src, target)
    readme = dest / "README.md"
    shutil.copy2(card, readme)
    if hardware:
        metadata_save(readme, {**meta, "suggested_hardware": hardware})
    check_local_imports(dest)
    return dest


def check_out_dir(dest: Path) -> None:
    """Refuse a folder with old files in it (they would be uploaded too) or one inside the copied code."""
    dest = dest.resolve()
    if dest.exists() and any(dest.iterdir()):
        raise DeployError(f"--out {dest} is not empty: give a new or empty folder (old files would be uploaded too).")
    for rel in RUNTIME_PATHS:
        if dest.is_relative_to((ROOT / rel).resolve()):
            raise DeployError(f"--out {dest} is inside {rel}/, which is copied into it: choose a folder elsewhere.")


def _ignored(folder: str, names: list[str]) -> set[str]:
    """copytree's ignore: IGNORED_NAMES, and a runs/ folder of run data, but not the engine.runs package."""
    skipped = set(shutil.ignore_patterns(*IGNORED_NAMES)(folder, names))
    return skipped | {n for n in names if n == "runs" and not (Path(folder) / n / "__init__.py").exists()}


def _missing_modules(folder: Path, names: list[str]) -> set[str]:
    """Dotted module names (of shipped top-level packages) with no file in `folder`."""
    missing = set()
    for name in names:
        parts = name.split(".")
        for depth in range(2, len(parts) + 1):
            base = folder.joinpath(*parts[:depth])
            if not (base.with_suffix(".py").exists() or (base / "__init__.py").exists()):
                if base.parent.is_dir() and (base.parent / "__init__.py").exists():
                    missing.add(".".join(parts[:depth]))  # a package that lacks the submodule
                break
    return missing


def check_local_imports(folder: Path) -> None:
    """Fail when shipped code imports a top-level module of this repo that is not shipped.

    Guards RUNTIME_PATHS against drift: a new package (say `assets/`) used by the app
    would otherwise deploy fine and crash on the Space.
    """
    local = {p.stem if p.suffix == ".py" else p.name for p in ROOT.iterdir()
             if (p.suffix == ".py" or (p / "__init__.py").exists()) and p.name not in ("tests", "bench", "spaces")}
    shipped = {p.stem if p.suffix == ".py" else p.name for p in folder.iterdir()}
    missing = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            missing |= {n.split(".")[0] for n in names} & (local - shipped)
            missing |= _missing_modules(folder, [n for n in names if n.split(".")[0] in shipped])
    if missing:
        raise DeployError(
            f"The app imports {', '.join(sorted(missing))} but deploy.py does not ship it: add it to "
            "RUNTIME_PATHS (or stop IGNORED_NAMES from skipping it)."
        )


def validate(opts: Options) -> str | None:
    """Every offline check, in the order a user would fix them; returns the token (None for --dry-run)."""
    check_repo_id(opts.repo)
    check_hardware(opts.hardware)
    if opts.bucket is not None and "/" not in opts.bucket:
        raise DeployError(f"Bucket {opts.bucket!r} needs a user part: --bucket <user>/<bucket-name>.")
    return None if opts.dry_run else resolve_token(opts.token)


def deploy(opts: Options, api=None) -> Path:
    """Validate, build, then (unless dry-run) create the Space and upload. `api` is an HfApi (or a fake)."""
    token = validate(opts)
    folder = build_folder(opts.out or Path(tempfile.mkdtemp(prefix="mlm-space-")), hardware=opts.hardware)
    if opts.dry_run:
        return folder
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    with hub_step("creating the Space"):
        api.create_repo(opts.repo, repo_type="space", space_sdk="gradio", private=opts.private, exist_ok=True,
                        token=token)
    with hub_step("uploading the app", "The Space exists but may be empty: run the same command again."):
        api.upload_folder(folder_path=str(folder), repo_id=opts.repo, repo_type="space",
                          ignore_patterns=IGNORE_PATTERNS, commit_message="Deploy MLM Studio", token=token)
    # Hardware and storage after the upload: a refused paid request still leaves a working Space on CPU.
    uploaded = f"The app is uploaded to https://huggingface.co/spaces/{opts.repo}, but "
    if opts.hardware:
        with hub_step(f"requesting {opts.hardware}", uploaded + "set the hardware in the Space settings instead."):
            api.request_space_hardware(opts.repo, opts.hardware, token=token)
    if opts.bucket:
        from huggingface_hub import Volume

        with hub_step(f"mounting bucket {opts.bucket} at /data", uploaded + "runs will not survive a restart."):
            api.create_bucket(opts.bucket, private=True, exist_ok=True, token=token)
            api.set_space_volumes(opts.repo, [Volume(type="bucket", source=opts.bucket, mount_path="/data")],
                                  token=token)
    return folder


@contextmanager
def hub_step(what: str, consequence: str = "nothing else was changed."):
    """Turn any Hub failure (HTTP error, no network, refused billing) into one readable message."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - whatever the Hub client raises, the user needs the same message
        raise HubError(f"The Hub failed while {what}: {type(exc).__name__}: {exc}. {consequence}") from exc


def parse_args(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(prog="python spaces/deploy.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--repo", required=True, help="the Space id, <user>/<name>")
    p.add_argument("--hardware", help="request this hardware (cpu-basic, t4-small, ...); paid tiers need billing")
    p.add_argument("--private", action="store_true", help="create the Space private")
    p.add_argument("--token", help="a write token (default: HF_TOKEN or the saved `hf auth login` token)")
    p.add_argument("--bucket", help="mount this storage bucket (<user>/<name>, created if missing) at /data")
    p.add_argument("--dry-run", action="store_true", help="build and check the folder, upload nothing")
    p.add_argument("--out", type=Path, help="build the folder here instead of a temporary directory")
    a = p.parse_args(argv)
    return Options(repo=a.repo, hardware=a.hardware, private=a.private, token=a.token, bucket=a.bucket,
                   dry_run=a.dry_run, out=a.out)


def main(argv: list[str] | None = None, api=None) -> int:
    opts = parse_args(argv)
    try:
        folder = deploy(opts, api=api)
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except HubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if opts.dry_run:
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        print(f"Dry run: built {folder} ({len(files)} files); nothing uploaded.")
        print("\n".join(f"  {f}" for f in files))
    else:
        print(f"Deployed: https://huggingface.co/spaces/{opts.repo}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
