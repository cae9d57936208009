"""The one owner of a run folder's format (docs/interfaces.md).

Where runs live, what a run id may look like, and `RunFolder`: every file of a run folder
(config.json, status.json, owner.json, metrics.jsonl, summary.json, worker.log, eval_set.npz,
checkpoints/, final/, the cancel flag). No other module names these files; they ask a
RunFolder for what a file holds, or for its path when a library writes it (a model's
save_pretrained, numpy, the worker's stdout).

Writers are crash-safe: status.json is replaced atomically, metrics.jsonl is append-only with
one complete line per write, and folders (a checkpoint, final/) are written under a hidden
name and renamed into place, so a reader never sees half a file and a killed worker loses at
most what it was writing. A freshly started server sees exactly what an earlier one left.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from engine.errors import UserError, disk_message
from engine.validation import quote

STATES = ("queued", "running", "completed", "failed", "cancelled", "interrupted")
FINAL_STATES = ("completed", "failed", "cancelled", "interrupted")
RESUMABLE_STATES = ("interrupted", "cancelled", "failed")
LOG_TAIL_LINES = 20
EXPERIMENTS = ".experiments"  # payoff experiments (engine.runs.experiments): a hidden name, never a run id


def is_final(status: dict) -> bool:
    return status.get("state") in FINAL_STATES


def runs_dir() -> Path:
    explicit = os.environ.get("MLM_RUNS_DIR")
    if explicit:
        root = Path(explicit)
    elif os.path.isdir("/data") and os.access("/data", os.W_OK):
        root = Path("/data/runs")
    else:
        root = Path("runs")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        if not root.is_dir():
            raise  # nowhere to read runs from either: the server cannot serve this folder
        # A full or read-only folder that exists: its runs are still served read-only (writable()).
    return root.resolve()


def writable(root: Path) -> str:
    """'' when files can be written under `root`, else a plain reason (full, read-only)."""
    probe = Path(root) / f".write-probe.{os.getpid()}"
    try:
        with open(probe, "wb") as f:
            f.write(b"x" * 4096)  # one block: a full disk refuses even this
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        return disk_message(exc) or "the runs folder cannot be written"
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    return ""


def new_run_id() -> str:
    """Sortable by time, unguessable by content: 'YYYYmmdd-HHMMSS-' + 16 random hex digits."""
    return time.strftime("%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(8)


def valid_run_id(run_id) -> bool:
    """Run ids come from URLs: allow only our own shape, never a path."""
    return (isinstance(run_id, str) and bool(run_id) and len(run_id) <= 64
            and all(c.isascii() and (c.isalnum() or c == "-") for c in run_id))


def _discard(path: Path) -> None:
    """Remove a half-written file or folder; a failure here must not hide the write's own error."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def write_json_atomic(path: Path, payload: dict) -> None:
    """Replace `path` in one rename; a failed write (a full disk) leaves the old file and no temporary."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(payload, indent=1))
        os.replace(tmp, path)
    except BaseException:
        _discard(tmp)
        raise


def read_text_nofollow(path: Path, limit: int | None = None) -> str:
    """A file's text, refusing a symlink: a link planted in the runs folder must not make the
    server read (and show) a file from elsewhere. OSError (ELOOP) for a link."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        if limit is not None:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
        return f.read().decode("utf-8", errors="replace")


def read_json(path: Path, default: dict | None = None) -> dict:
    try:
        value = json.loads(read_text_nofollow(Path(path)))
    except (OSError, ValueError, RecursionError):
        return dict(default or {})
    return value if isinstance(value, dict) else dict(default or {})


def _replace_dir(target: Path, write: Callable[[Path], None]) -> Path:
    """Let `write` fill a hidden sibling folder, then swap it in for `target`.

    The previous `target` stays whole until the new one is complete (it is moved aside, not
    deleted first); a failed write (a full disk) removes its half-written folder and re-raises."""
    tmp = target.with_name(f".{target.name}.tmp")
    old = target.with_name(f".{target.name}.old")
    _discard(tmp)
    try:
        write(tmp)
    except BaseException:
        _discard(tmp)
        raise
    _discard(old)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    _discard(old)
    return target


def _cut(f, size: int) -> None:
    try:
        f.truncate(size)
    except OSError:
        pass


class RunFolder:
    """One run's folder `<runs_dir>/<run_id>/`. Cheap to make: it holds only the path."""

    CONFIG_EXTRAS = ("run_id", "created_at")  # added to TrainConfig.to_dict() in config.json
    _STEP = "step-"

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def run_id(self) -> str:
        return self.path.name

    # ------------------------------------------------------------ finding runs

    @classmethod
    def all(cls, root: Path | None = None) -> list[RunFolder]:
        """Every run under `root` (default runs_dir()), oldest first (ids start with their UTC time).

        The one lister: the history table, the Compare tab's picker and the Costs tab's
        calibration runs all filter this list."""
        root = Path(root) if root else runs_dir()
        if not root.is_dir():
            return []
        found = (cls(p) for p in root.iterdir() if valid_run_id(p.name) and not p.is_symlink())
        return sorted((f for f in found if f.exists()), key=lambda f: f.run_id)

    @classmethod
    def find(cls, run_id: str, root: Path | None = None) -> RunFolder | None:
        """The run named `run_id`, or None when the id is malformed or no such run exists."""
        run_id = run_id.strip() if isinstance(run_id, str) else run_id
        if not valid_run_id(run_id):
            return None
        folder = cls((Path(root) if root else runs_dir()) / run_id)
        return folder if folder.exists() and not folder.path.is_symlink() else None

    @classmethod
    def open(cls, run_id: str, root: Path | None = None) -> RunFolder:
        """The run named `run_id`, or a UserError that says what was wrong with the id."""
        if run_id is not None and not isinstance(run_id, str):
            raise UserError(f"A run id is text like 20260101-120000-0123456789abcdef, got {quote(run_id)}.")
        run_id = (run_id or "").strip()
        if not run_id:
            raise UserError("No run selected: start a run or pick one from the history.")
        if not valid_run_id(run_id):
            raise UserError(f"{quote(run_id)} is not a run id (ids look like 20260101-120000-0123456789abcdef).")
        folder = cls.find(run_id, root)
        if folder is None:
            raise UserError(f"No run with id {quote(run_id)} on this server: check the link, or start a new run.")
        return folder

    @classmethod
    def create(cls, root: Path, run_id: str, settings: dict, created_at: float) -> RunFolder:
        """A new run folder holding its config.json (the TrainConfig dict plus its id and time)."""
        folder = cls(Path(root) / run_id)
        folder.path.mkdir(parents=True, exist_ok=True)
        try:
            write_json_atomic(folder.path / "config.json", {**settings, "run_id": run_id, "created_at": created_at})
        except BaseException:
            folder.discard()  # no empty run folder left behind
            raise
        return folder

    def discard(self) -> None:
        """Remove a run folder that never became a run (its first writes failed)."""
        shutil.rmtree(self.path, ignore_errors=True)

    def exists(self) -> bool:
        """A folder is a run once its config.json is written (the first file of every run)."""
        return (self.path / "config.json").exists()

    # ------------------------------------------------------------ config, status, summary, owner

    def config(self) -> dict:
        return read_json(self.path / "config.json")

    def kind(self) -> str:
        """'mlm' or 'classify': config.json's "kind" (runs written before classifiers have none: mlm)."""
        kind = self.config().get("kind", "mlm")
        return kind if isinstance(kind, str) else "mlm"

    def settings(self) -> dict:
        """config.json without the fields the run folder adds: a TrainConfig dict."""
        return {k: v for k, v in self.config().items() if k not in self.CONFIG_EXTRAS}

    def status(self) -> dict:
        return read_json(self.path / "status.json", {"state": "unknown"})

    def update_config(self, **changes) -> dict:
        """Merge `changes` into config.json: only a run's name and notes change after it starts."""
        config = {**self.config(), **changes}
        write_json_atomic(self.path / "config.json", config)
        return config

    def update_status(self, **changes) -> dict:
        """Merge `changes` into status.json (read, modify, atomic replace)."""
        path = self.path / "status.json"
        status = read_json(path)
        status.update(changes, updated_at=time.time())
        write_json_atomic(path, status)
        return status

    def summary(self) -> dict:
        return read_json(self.path / "summary.json")

    def write_summary(self, summary: dict) -> None:
        write_json_atomic(self.path / "summary.json", summary)

    @property
    def owner_path(self) -> Path:
        """owner.json; engine.runs.owners decides what goes in it."""
        return self.path / "owner.json"

    # ------------------------------------------------------------ metrics.jsonl

    @property
    def _metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    def append_metric(self, row: dict) -> None:
        line = (json.dumps(row, separators=(",", ":")) + "\n").encode()
        with open(self._metrics, "ab") as f:
            start = f.tell()
            try:
                f.write(line)
                f.flush()
            except OSError:
                _cut(f, start)  # a full disk: no half line stays behind
                raise

    def metrics(self, offset: int = 0) -> tuple[list[dict], int]:
        """Rows appended since byte `offset`, and the new offset (pollers read only what is new).

        A trailing line without its newline is still being written: leave it for next time.
        """
        try:
            with os.fdopen(os.open(self._metrics, os.O_RDONLY | os.O_NOFOLLOW), "rb") as f:
                f.seek(offset)
                chunk = f.read()
        except OSError:  # missing, or a symlink (never followed)
            return [], offset
        end = chunk.rfind(b"\n") + 1
        rows = []
        for line in chunk[:end].splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a crash mid-write; the rest of the file is intact
        return rows, offset + end

    def metrics_identity(self) -> int | None:
        """Changes when the metrics file is rewritten (a resume truncates it): offsets then start over."""
        try:
            return os.stat(self._metrics).st_ino
        except FileNotFoundError:
            return None

    def truncate_metrics_after(self, step: int) -> None:
        """On resume from a checkpoint at `step`, drop rows the resumed run will log again."""
        rows, _ = self.metrics()
        keep = [r for r in rows if r.get("step", 0) <= step]
        tmp = self._metrics.with_name(".metrics.jsonl.tmp")
        try:
            tmp.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in keep))
            os.replace(tmp, self._metrics)  # a new inode: see metrics_identity()
        except BaseException:
            _discard(tmp)
            raise

    def latest_metrics(self) -> dict:
        """The newest train row and the newest eval row (for /run_status and the history table)."""
        latest: dict = {}
        for row in self.metrics()[0]:
            latest[row.get("kind", "train")] = row
        return latest

    def perplexity_before_after(self) -> tuple[float | None, float | None]:
        summary = self.summary()
        if "eval_perplexity_before" in summary:
            return summary.get("eval_perplexity_before"), summary.get("eval_perplexity_after")
        # A classifier run's eval rows carry accuracy, not perplexity: they have none to show.
        evals = [r for r in self.metrics()[0] if r.get("kind") == "eval" and "eval_perplexity" in r]
        before = next((r["eval_perplexity"] for r in evals if r.get("step") == 0), None)
        after = evals[-1]["eval_perplexity"] if evals and evals[-1].get("step", 0) > 0 else None
        return before, after

    def history_row(self) -> dict:
        """One line of the runs table: what a user scans to find a run."""
        config, status, summary = self.config(), self.status(), self.summary()
        before, after = self.perplexity_before_after()
        return {
            "run_id": self.run_id,
            "name": config.get("name") or self.run_id,  # runs from before names existed: their id
            "corpus": corpus_label(config.get("corpus")),
            "kind": config.get("kind", "mlm"),
            "model": config.get("model", "?"),
            "method": config.get("method", "?"),
            "trainable_params": summary.get("trainable_params"),
            "state": status.get("state", "unknown"),
            "step": status.get("step", 0),
            "total_steps": status.get("total_steps"),
            "perplexity_before": before,
            "perplexity_after": after,
            "duration_s": duration(status),
            "estimate_s": (status.get("estimate") or {}).get("seconds"),
            "notes": config.get("notes", ""),
            "accuracy": self.summary().get("accuracy") if config.get("kind") == "classify" else None,
            "created_at": config.get("created_at"),
        }

    # ------------------------------------------------------------ worker.log

    @property
    def log_path(self) -> Path:
        """worker.log: the worker process's stdout and stderr (engine.runs.process opens it)."""
        return self.path / "worker.log"

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        """The last lines of worker.log (progress bars rewrite one line with '\\r': keep the latest)."""
        try:
            text = read_text_nofollow(self.log_path, limit=64_000)
        except OSError:  # missing, or a symlink (never followed)
            return []
        tail: deque[str] = deque(maxlen=lines)
        for line in text.split("\n"):  # not splitlines(): it would split at each '\r' too
            line = line.rsplit("\r", 1)[-1].rstrip()
            if line:
                tail.append(line)
        return list(tail)

    def log_head(self, lines: int) -> list[str]:
        """The first lines of worker.log (where the trainer says which device it uses)."""
        try:
            fd = os.open(self.log_path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:  # missing, or a symlink (never followed)
            return []
        with os.fdopen(fd, "rb") as f:
            return f.read(256_000).decode("utf-8", errors="replace").splitlines()[:lines]

    # ------------------------------------------------------------ the cancel flag

    @property
    def _cancel(self) -> Path:
        return self.path / "cancel"

    def request_cancel(self) -> None:
        self._cancel.touch()

    def clear_cancel(self) -> None:
        self._cancel.unlink(missing_ok=True)

    def cancel_requested(self) -> bool:
        return self._cancel.exists()

    def cancel_requested_at(self) -> float | None:
        """When the cancel flag was set (epoch seconds), None without one."""
        try:
            return self._cancel.stat().st_mtime
        except FileNotFoundError:
            return None

    # ------------------------------------------------------------ eval set, checkpoints, final model

    @property
    def eval_set_path(self) -> Path:
        """eval_set.npz: the fixed masked eval chunks (engine.training.eval_set reads and writes it)."""
        return self.path / "eval_set.npz"

    def write_eval_set(self, write: Callable[[Path], None]) -> None:
        """`write(tmp)` saves the arrays under a hidden name (ending .npz, so numpy keeps it); then it is renamed."""
        tmp = self.path / ".eval_set.npz.tmp.npz"
        try:
            write(tmp)
            tmp.replace(self.eval_set_path)
        except BaseException:
            _discard(tmp)
            raise

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @staticmethod
    def checkpoint_model(checkpoint: Path) -> Path:
        """A checkpoint's loadable model folder (full: weights + tokenizer; LoRA: adapter + tokenizer)."""
        return Path(checkpoint) / "model"

    @staticmethod
    def checkpoint_state(checkpoint: Path) -> Path:
        """A checkpoint's state.pt: optimizer, scheduler, step, epoch, RNG."""
        return Path(checkpoint) / "state.pt"

    def checkpoints(self) -> list[tuple[int, Path]]:
        """(step, folder) of the complete checkpoints `checkpoints/step-<N>/`, oldest first."""
        if not self.checkpoints_dir.is_dir():
            return []
        found = []
        for path in self.checkpoints_dir.iterdir():
            step = path.name.removeprefix(self._STEP)
            complete = self.checkpoint_state(path).exists() and self.checkpoint_model(path).is_dir()
            if path.name.startswith(self._STEP) and step.isdigit() and complete:
                found.append((int(step), path))
        return sorted(found)

    def latest_checkpoint(self) -> Path | None:
        found = self.checkpoints()
        return found[-1][1] if found else None

    def latest_checkpoint_step(self) -> int | None:
        found = self.checkpoints()
        return found[-1][0] if found else None

    def write_checkpoint(self, step: int, write: Callable[[Path], None]) -> Path:
        """`write(folder)` fills a hidden folder; it becomes `checkpoints/step-<step>/` in one rename."""
        self.checkpoints_dir.mkdir(parents=True, exist_ok=True)
        return _replace_dir(self.checkpoints_dir / f"{self._STEP}{step}", write)

    @property
    def final_dir(self) -> Path:
        """final/: the trained model (full) or adapter (LoRA), with its tokenizer."""
        return self.path / "final"

    def has_final(self) -> bool:
        """final/ holds a model or an adapter (not merely an empty or half-deleted folder)."""
        return any((self.final_dir / name).exists() for name in ("config.json", "adapter_config.json"))

    def write_final(self, write: Callable[[Path], None]) -> Path:
        """`write(folder)` saves the model into a hidden folder, which then replaces final/."""
        return _replace_dir(self.final_dir, write)

    @property
    def export_dir(self) -> Path:
        """Where exports (the zip of final/) go by default."""
        return self.path / "export"


def corpus_label(corpus) -> str:
    """A corpus as the runs table names it (the stored corpus's id; the store has its display name)."""
    if not isinstance(corpus, dict):
        return "?"
    return str(corpus.get("corpus_id") or corpus.get("hub_id") or corpus.get("source") or "?")


def duration(status: dict) -> float | None:
    """Wall-clock seconds of a finished run, every attempt of a resumed one included."""
    started, finished = status.get("started_at"), status.get("finished_at")
    if started is None or finished is None:
        return None
    return round(finished - started + float(status.get("elapsed_before") or 0.0), 1)
def experiment_path(root: Path | None, experiment_id: str) -> Path:
    """Where one payoff experiment's record lives (a JSON file beside the runs, not a run)."""
    if not valid_run_id(experiment_id):
        raise UserError(f"{quote(experiment_id)} is not an experiment id.")
    return (Path(root) if root else runs_dir()) / EXPERIMENTS / f"{experiment_id}.json"


def experiment_ids(root: Path | None = None) -> list[str]:
    """Every stored experiment id, oldest first (ids start with their UTC time, like run ids)."""
    folder = (Path(root) if root else runs_dir()) / EXPERIMENTS
    if not folder.is_dir() or folder.is_symlink():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if valid_run_id(p.stem) and not p.is_symlink())


def corpus_ids_in_use(root: Path | None = None) -> set[str]:
    """Stored corpora that some run's config refers to: the corpus store never removes these."""
    used = set()
    for run in RunFolder.all(root):
        corpus = run.config().get("corpus")
        if isinstance(corpus, dict) and corpus.get("source") == "stored" and isinstance(corpus.get("corpus_id"), str):
            used.add(corpus["corpus_id"])
    return used
