"""Take a finished run's model home: a zip of its final model (full model or LoRA adapter,
with its tokenizer), or a push to the user's own Hub repository with their own token."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from engine.errors import UserError
from engine.numbers import format_bytes
from engine.offline import is_offline
from engine.run_folder import RunFolder

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def final_folder(run_dir: Path) -> Path:
    folder = RunFolder(run_dir)
    final = folder.final_dir
    if final.is_symlink() or any(p.is_symlink() for p in final.rglob("*")):
        # A link planted in the runs folder must not make the server export files from elsewhere.
        raise UserError(f"Run {Path(run_dir).name}'s final model contains a symbolic link; it is not exported.")
    if not final.is_dir():
        state = folder.status().get("state", "unknown")
        raise UserError(f"Run {Path(run_dir).name} has no final model yet (it is {state}): "
                        f"wait until it completes, or resume it.")
    return final


def is_adapter(final: Path) -> bool:
    return (Path(final) / "adapter_config.json").exists()


human_size = format_bytes  # the Train tab's download note calls it so


def zip_final(run_dir: Path, out_dir: Path | None = None) -> tuple[Path, int]:
    """(zip path, size in bytes) of final/; built once and reused while final/ is unchanged.

    out_dir defaults to the run's export folder; the web app passes a folder under the system temp
    directory, which Gradio may serve for download wherever the runs folder lives."""
    final = final_folder(run_dir)
    kind = "lora-adapter" if is_adapter(final) else "model"
    out_dir = Path(out_dir) if out_dir else RunFolder(run_dir).export_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{Path(run_dir).name}-{kind}.zip"
    newest = max((p.stat().st_mtime for p in final.rglob("*")), default=final.stat().st_mtime)
    if not target.exists() or target.stat().st_mtime < newest:
        # Build under a private name, then rename: a second click never sees half a zip.
        tmp_base = out_dir / f".{kind}.{os.getpid()}"
        built = Path(shutil.make_archive(str(tmp_base), "zip", root_dir=final))
        os.replace(built, target)
    return target, target.stat().st_size


def model_card(run_dir: Path) -> str:
    folder = RunFolder(run_dir)
    config, summary = folder.config(), folder.summary()
    method = "LoRA adapter" if config.get("method") == "lora" else "fully fine-tuned model"
    before, after = summary.get("eval_perplexity_before"), summary.get("eval_perplexity_after")
    lines = [
        "---", "library_name: " + ("peft" if config.get("method") == "lora" else "transformers"),
        "tags: [fill-mask, domain-adaptation, mlm-studio]", "---", "",
        f"# {method} from MLM Studio", "",
        f"Masked-language-model domain adaptation of `{config.get('model', '?')}` "
        f"on `{config.get('corpus', {}).get('source', '?')}`.", "",
    ]
    if before is not None and after is not None:
        lines += [f"Eval perplexity: {before:,.2f} before, {after:,.2f} after "
                  f"({summary.get('steps', '?')} steps).", ""]
    lines += ["Training configuration:", "", "```json", json.dumps(config, indent=2), "```", ""]
    return "\n".join(lines)


def push_to_hub(run_dir: Path, repo_id: str, token: str, private: bool = True) -> str:
    """Upload final/ (and a model card) to `repo_id` with the user's token; returns the repo URL."""
    repo_id, token = (repo_id or "").strip(), (token or "").strip()
    if is_offline():
        raise UserError("Pushing to the Hub needs a connection, and this app runs offline: download the zip instead.")
    if not REPO_ID.match(repo_id):
        raise UserError(f"Repository id {repo_id!r} should look like 'your-name/model-name'.")
    if not token:
        raise UserError("Paste a Hugging Face access token with write permission (it is used once and not stored).")
    final = final_folder(run_dir)
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(folder_path=str(final), repo_id=repo_id,
                          commit_message=f"MLM Studio run {Path(run_dir).name}")
        if not (final / "README.md").exists():
            api.upload_file(path_or_fileobj=model_card(run_dir).encode(), path_in_repo="README.md", repo_id=repo_id)
    except Exception as exc:  # noqa: BLE001 - auth, permission and network errors all need the message
        raise UserError(f"The Hub refused the upload to {repo_id}: {exc}") from exc
    return str(url)
