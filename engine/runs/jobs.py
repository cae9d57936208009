"""Runs: submit, queue, watch, cancel and resume training runs, each in its own worker process.

The run folder on disk is the truth (docs/interfaces.md); this module keeps only what a
server needs in memory (the FIFO queue and the live worker handles) and can rebuild it
from the folders, so a restarted server lists every run and marks the ones whose worker
is gone as interrupted (never restarting anything on its own).

    run_id = jobs.submit(cfg, owner=token)   # validates, writes config/status/owner, queues
    jobs.status(run_id)                      # state, step, queue position, latest metrics, log tail
    jobs.cancel(run_id, owner=token)         # stops after the current step, forced after a grace period
    jobs.resume(run_id, owner=token)         # same run id and folder, from the last checkpoint

A supervisor thread (and every status read) polls the workers: a worker that died
without saying how (SIGKILL, OOM) is marked interrupted with the tail of its log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import replace
from pathlib import Path

from engine.errors import UserError, disk_message, plain
from engine.numbers import env_number
from engine.run_folder import RESUMABLE_STATES, RunFolder, is_final, new_run_id, runs_dir, writable
from engine.runs.owners import is_admin, is_owner, owner_hash, owner_of, write_owner
from engine.runs.process import DEFAULT_TRAIN_TARGET, DISK_EXIT, WorkerHandle, describe_exit, launch, pid_is_worker
from engine.runs.queue import RunQueue
from engine.runs.record import earlier_attempts
from engine.training.classify.config import ClassifyConfig
from engine.training.config import NAME_MAX, NOTES_MAX, TrainConfig, clean_text, default_name
from engine.validation import check

log = logging.getLogger(__name__)
DEDUPE_SECONDS = 5.0
# Runs one owner may have queued or running at once: one caller cannot fill the queue for everyone.
MAX_PER_OWNER = env_number("MLM_MAX_RUNS_PER_OWNER", 3, minimum=1)


class DuplicateSubmission(UserError):
    """The same owner submitted the same config moments ago: a double click, not a new run."""

    def __init__(self, run_id: str, seconds_ago: float):
        super().__init__(
            f"This run was already started {seconds_ago:.0f} s ago (run {run_id}); "
            f"the second Start was ignored so that two identical runs do not start by accident."
        )
        self.run_id = run_id


class Jobs:
    """The run registry of one runs folder, for one server process."""

    def __init__(self, root: Path | None = None, *, max_concurrent: int | None = None,
                 cancel_grace_s: float | None = None, train_target: str = DEFAULT_TRAIN_TARGET,
                 poll_s: float = 0.5, supervise: bool = True, preflight: bool = True):
        self.root = Path(root) if root else runs_dir()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError:
            if not self.root.is_dir():
                raise
        self.max_per_owner = MAX_PER_OWNER
        # Final statuses not yet on disk (a full or read-only runs folder): run id -> fields. The
        # supervisor retries them until they are written, so no dead worker stays "running".
        self._unrecorded: dict[str, dict] = {}
        self.queue = RunQueue(max_concurrent)
        self.cancel_grace_s = cancel_grace_s if cancel_grace_s is not None else env_number("MLM_CANCEL_GRACE_S", 30.0)
        self.train_target = train_target
        self.preflight = preflight
        self._lock = threading.RLock()
        self._recent: dict[tuple[str, str], tuple[str, float]] = {}
        self._stop = threading.Event()
        self._recover()
        self._thread = None
        if supervise:
            self._thread = threading.Thread(target=self._supervise, args=(poll_s,), name="mlm-jobs-supervisor",
                                            daemon=True)
            self._thread.start()

    # ------------------------------------------------------------ submitting

    def submit(self, cfg: TrainConfig | ClassifyConfig, owner: str | None = None, caller: str | None = None,
               check_cap: bool = True) -> str:
        """Validate, write the run folder, queue the run; returns its id. Raises UserError.

        caller: who pressed Start, when that is not the owner (an API client's session, whose
        every start gets a fresh owner token): the same caller and config within seconds is a
        double click (DuplicateSubmission). Default: the owner. A ClassifyConfig makes a classifier
        run (config.json's "kind": "classify"); check_cap=False: an experiment checked the owner's
        cap once for all its runs (engine.runs.experiments)."""
        cfg, notices = self._checked(cfg)
        key = (owner_hash(caller or owner or ""), hashlib.sha256(cfg.to_json().encode()).hexdigest())
        with self._lock:
            now = time.time()
            earlier = self._recent.get(key)
            if earlier and now - earlier[1] < DEDUPE_SECONDS:
                raise DuplicateSubmission(earlier[0], now - earlier[1])
            if check_cap:
                self._check_owner_cap(owner)
            if hasattr(cfg, "name") and not cfg.name:  # named after the dedupe key: a default name carries the time
                cfg = replace(cfg, name=default_name(cfg, now))
            run_id = self._create(cfg, owner, now, notices)
            self.queue.push(run_id)
            self._recent = {k: v for k, v in self._recent.items() if now - v[1] < DEDUPE_SECONDS}
            self._recent[key] = (run_id, now)
            self._start_waiting()
        return run_id

    def _checked(self, cfg):
        """A validated copy (the caller's config stays as it was) and notices, by the run's kind."""
        if isinstance(cfg, ClassifyConfig):
            cfg = replace(cfg).validated()
            if self.preflight:
                from engine.training.classify.infer import preflight

                preflight(cfg)  # labels, sizes, max length: refused before a folder exists
            return cfg, []
        from engine.hardware import apply_limits, detect

        cfg = replace(cfg).validated()
        cfg, notices = apply_limits(cfg, detect(runs_root=self.root))  # CPU Space caps; refuses on ZeroGPU
        if self.preflight:
            from engine.training.preflight import check_runnable

            check_runnable(cfg)
        return cfg, notices

    def _create(self, cfg: TrainConfig | ClassifyConfig, owner: str | None, now: float, notices) -> str:
        """Write the new run's folder; on a disk error remove it and say what is wrong, in plain words."""
        reason = writable(self.root)
        if reason:
            raise UserError(f"Cannot start a run: {reason}.")
        run_id = new_run_id()
        try:
            folder = RunFolder.create(self.root, run_id, cfg.to_dict(), now)
        except OSError as exc:
            raise UserError(f"Cannot start a run: {plain(exc)}") from None
        try:
            if owner:
                write_owner(folder, owner)
            folder.update_status(state="queued", message="Waiting for a free worker slot", created_at=now,
                                 step=0, total_steps=None, log_tail=[], notices=notices,
                                 estimate=_estimate(cfg, self.root))
        except OSError as exc:
            folder.discard()  # no half-made run folder stays behind
            raise UserError(f"Cannot start a run: {plain(exc)}") from None
        return run_id

    def _check_owner_cap(self, owner: str | None) -> None:
        """Refuse a start when this owner already has max_per_owner runs queued or running."""
        if not owner:
            return
        mine = owner_hash(owner)
        live = [w.run_id for w in self.queue.waiting] + list(self.queue.running)
        count = sum(owner_of(self._at(run_id)) == mine for run_id in live)
        if count >= self.max_per_owner:
            raise UserError(f"You already have {count} runs queued or running (at most {self.max_per_owner} "
                            f"at once): wait for one to finish, or cancel one.")

    def _start_waiting(self) -> None:
        """Fill free worker slots from the head of the queue (caller holds the lock)."""
        while (nxt := self.queue.next_to_start()) is not None:
            folder = self._at(nxt.run_id)
            try:
                folder.clear_cancel()
                # "running" before the process exists: a worker that fails at once writes "failed"
                # after this, never before it (which this write would then hide).
                folder.update_status(state="running", pid=None, started_at=time.time(),
                                     message="Starting the worker" + (" to resume" if nxt.resume else ""))
                handle = launch(folder, nxt.resume, self.train_target)
            except OSError as exc:
                self._finish(folder, "failed", f"Could not start a worker process: {plain(exc)}")
                continue
            self.queue.running[nxt.run_id] = handle

    # ------------------------------------------------------------ reading

    def folder(self, run_id: str) -> RunFolder:
        """An existing run of this registry, or a UserError saying what was wrong with the id."""
        return RunFolder.open(run_id, self.root)

    def _at(self, run_id: str) -> RunFolder:
        """A run this registry already knows (queued or running): no id check needed."""
        return RunFolder(self.root / run_id)

    def status(self, run_id: str, detail: bool = True) -> dict:
        """Everything a watcher needs, read from disk (anyone with the id may read it).

        detail=False leaves out the latest metrics and the summary (a browser poll reads
        new metric rows itself, by byte offset, instead of the whole file every second)."""
        folder = self.folder(run_id)
        self.check()
        status, config = self._status_of(folder), folder.config()
        with self._lock:
            position = self.queue.position(folder.run_id)
        live = status.get("state") in ("running", "queued")
        return {
            **status,
            "run_id": folder.run_id,
            "kind": folder.kind(),
            "model": config.get("model"),
            "method": config.get("method"),
            "queue_position": position,
            "log_tail": folder.log_tail() if live or not status.get("log_tail") else status["log_tail"],
            "latest": folder.latest_metrics() if detail else {},
            "summary": folder.summary() if detail else {},
            "cancel_requested": live and folder.cancel_requested(),
            "resumable": status.get("state") in RESUMABLE_STATES,
            "last_checkpoint_step": folder.latest_checkpoint_step(),
        }

    def list_runs(self) -> list[dict]:
        """Every run on disk, newest first, with what the history table shows."""
        rows = [folder.history_row() for folder in RunFolder.all(self.root)]
        with self._lock:
            for row in rows:
                row["queue_position"] = self.queue.position(row["run_id"])
        return rows[::-1]

    def can_control(self, run_id: str, owner: str | None = None, admin_token: str | None = None) -> bool:
        return is_owner(self.folder(run_id), owner) or is_admin(admin_token)

    # ------------------------------------------------------------ cancel and resume

    def _status_of(self, folder: RunFolder) -> dict:
        """status.json, with a final status the disk has not taken yet laid over it."""
        with self._lock:
            pending = self._unrecorded.get(folder.run_id)
        return {**folder.status(), **pending} if pending else folder.status()

    def cancel(self, run_id: str, owner: str | None = None, admin_token: str | None = None) -> str:
        folder = self.folder(run_id)
        self._require_control(folder, owner, admin_token, "cancel")
        self.check()  # a worker that died since the last poll is recorded first
        try:
            return self._cancel(folder)
        except OSError as exc:
            raise UserError(f"Cannot cancel run {folder.run_id}: {plain(exc)}") from None

    def _cancel(self, folder: RunFolder) -> str:
        with self._lock:
            status = self._status_of(folder)
            if is_final(status):
                raise UserError(f"Run {folder.run_id} has already finished ({status['state']}): "
                                f"there is nothing to cancel.")
            if self.queue.remove(folder.run_id) or status.get("state") == "queued":
                self._finish(folder, "cancelled", "Cancelled while waiting in the queue, before it started.")
                return f"Run {folder.run_id} was cancelled before it started."
            folder.request_cancel()
            # a classifier run keeps no checkpoint (engine.training.classify): say only what will happen
            saves = "" if folder.kind() == "classify" else " and saves a checkpoint"
            folder.update_status(message=f"Cancelling: training stops after the current step{saves}")
        return (f"Cancel requested for run {folder.run_id}: it stops after the current step{saves} "
                f"(forced after {self.cancel_grace_s:.0f} s).")

    def resume(self, run_id: str, owner: str | None = None, admin_token: str | None = None) -> str:
        folder = self.folder(run_id)
        self._require_control(folder, owner, admin_token, "resume")
        self.check()
        if folder.run_id in self.unrecorded():
            raise UserError(f"Run {folder.run_id} stopped, but its status cannot be written yet: "
                            f"{writable(self.root) or 'the runs folder cannot be written'}. Resume it once it can.")
        try:
            return self._resume(folder)
        except OSError as exc:
            raise UserError(f"Cannot resume run {folder.run_id}: {plain(exc)}") from None

    def _resume(self, folder: RunFolder) -> str:
        with self._lock:
            state = folder.status().get("state")
            if state not in RESUMABLE_STATES:
                raise UserError(f"Run {folder.run_id} is {state}: only interrupted, cancelled or failed runs "
                                f"can be resumed.")
            step = folder.latest_checkpoint_step()
            where = (f"from its checkpoint at step {step}" if step is not None
                     else "from the start (classifier runs keep no checkpoints)" if folder.kind() == "classify"
                     else "from the start (no checkpoint was saved)")
            folder.clear_cancel()
            folder.update_status(state="queued", message=f"Queued to resume {where}", finished_at=None,
                                 resumed_at=time.time(), elapsed_before=earlier_attempts(folder.status()))
            self.queue.push(folder.run_id, resume=True)
            self._start_waiting()
        waiting = self.queue.position(folder.run_id)
        return f"Run {folder.run_id} resumes {where}" + (f" (position {waiting} in the queue)." if waiting else ".")

    def rename(self, run_id: str, name: str, notes: str, owner: str | None = None,
               admin_token: str | None = None) -> dict:
        """Change a run's name and notes (its owner only); returns the cleaned values kept."""
        folder = self.folder(run_id)
        self._require_control(folder, owner, admin_token, "rename")
        # the same bounds as a new run's name and notes (TrainConfig): too long is refused, not cut
        name = clean_text(check(name, "str", "Name", maximum=NAME_MAX), NAME_MAX, one_line=True)
        if not name:
            raise UserError("A run's name cannot be empty: type a few words that tell this run apart.")
        notes = clean_text(check(notes, "str", "Notes", maximum=NOTES_MAX), NOTES_MAX, one_line=False)
        with self._lock:
            folder.update_config(name=name, notes=notes)
        return {"run_id": folder.run_id, "name": name, "notes": notes}

    def _require_control(self, folder: RunFolder, owner: str | None, admin_token: str | None, action: str) -> None:
        if not (is_owner(folder, owner) or is_admin(admin_token)):
            raise UserError(
                f"Only whoever started run {folder.run_id} (the browser that started it, or an API caller "
                f"with the owner_token its start returned) or the holder of the admin token can {action} it; "
                f"anyone with the link can watch it."
            )

    def _finish(self, folder: RunFolder, state: str, message: str) -> None:
        """Record a final status; when the disk refuses, keep it and retry until it is written."""
        fields = dict(state=state, message=message, finished_at=time.time(), log_tail=folder.log_tail())
        try:
            folder.update_status(**fields)
        except OSError as exc:
            log.warning("run %s: final status not written yet (%s); retrying", folder.run_id, disk_message(exc))
            self._unrecorded[folder.run_id] = fields
        else:
            self._unrecorded.pop(folder.run_id, None)

    def _retry_unrecorded(self) -> None:
        for run_id, fields in list(self._unrecorded.items()):
            try:
                self._at(run_id).update_status(**fields)
            except OSError:
                return  # the disk still says no: try again at the next check
            del self._unrecorded[run_id]

    # ------------------------------------------------------------ supervision

    def check(self) -> None:
        """Reap finished workers, kill cancelled ones past the grace period, start queued runs."""
        with self._lock:
            self._retry_unrecorded()
            for run_id, handle in list(self.queue.running.items()):
                folder = self._at(run_id)
                code = handle.exit_code()
                if code is None:
                    self._enforce_cancel(folder, handle)
                    continue
                del self.queue.running[run_id]
                status = folder.status()
                if not is_final(status):
                    self._mark_dead(folder, status, code)
            self._start_waiting()

    def _enforce_cancel(self, folder: RunFolder, handle: WorkerHandle) -> None:
        asked_at = folder.cancel_requested_at()
        if asked_at is None or time.time() - asked_at < self.cancel_grace_s:
            return
        handle.kill()
        self.queue.running.pop(folder.run_id, None)
        step = folder.status().get("step", 0)
        self._finish(folder, "cancelled", f"Cancelled by force at step {step}: the worker did not stop within "
                                          f"{self.cancel_grace_s:.0f} s. Resume continues from the last checkpoint.")

    def _mark_dead(self, folder: RunFolder, status: dict, code: int) -> None:
        step = folder.latest_checkpoint_step()
        resume = (f"Resume continues from the checkpoint at step {step}." if step is not None
                  else "Resume starts it again (no checkpoint yet).")
        why = _disk_cause(folder, code)
        state = "failed" if why else "interrupted"
        self._finish(folder, state,
                     f"The worker {describe_exit(code)} at step {status.get('step', 0)}{why}. {resume}")

    def _supervise(self, poll_s: float) -> None:
        while not self._stop.wait(poll_s):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the supervisor must outlive any one bad run folder
                log.exception("jobs supervisor check failed")

    def _recover(self) -> None:
        """After a (re)start: adopt live workers, mark runs whose worker is gone as interrupted."""
        for folder in RunFolder.all(self.root):
            status, run_id = folder.status(), folder.run_id
            state = status.get("state")
            if state == "running" and pid_is_worker(status.get("pid"), run_id):
                self.queue.running[run_id] = WorkerHandle(run_id, int(status["pid"]))
            elif state in ("running", "queued"):
                self._finish(folder, "interrupted",
                             f"The server restarted while this run was {state}; it was not restarted "
                             f"automatically. Resume continues from its last checkpoint.")

    def unrecorded(self) -> dict[str, dict]:
        """Final statuses still waiting for the disk (the supervisor retries them)."""
        with self._lock:
            return dict(self._unrecorded)

    def close(self) -> None:
        """Stop supervising (tests; a server just exits). Workers keep running."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _disk_cause(folder: RunFolder, code: int | None = None) -> str:
    """', because the runs folder is full' when the worker's log or the disk says so ('' otherwise):
    a worker that cannot write its outcome dies without recording why."""
    tail = "\n".join(folder.log_tail(40))
    if "[Errno 28]" in tail or "No space left" in tail:
        return ", because the runs folder is full (free space, then resume)"
    if "[Errno 30]" in tail or "Read-only file system" in tail:
        return ", because the runs folder became read-only"
    reason = writable(folder.path.parent)
    if reason:
        return f", because {reason}"
    return " (the runs folder was full or read-only then; it can be written now)" if code == DISK_EXIT else ""


# ---------------------------------------------------------------- the server's registry

_registries: dict[Path, Jobs] = {}
_registries_lock = threading.Lock()


def registry() -> Jobs:
    """The registry of the current runs folder (engine.run_folder.runs_dir()), created once."""
    root = runs_dir()
    with _registries_lock:
        if root not in _registries:
            _registries[root] = Jobs(root)
        return _registries[root]


def submit(cfg: TrainConfig | ClassifyConfig, owner: str | None = None, caller: str | None = None) -> str:
    return registry().submit(cfg, owner, caller)


def status(run_id: str) -> dict:
    return registry().status(run_id)


def cancel(run_id: str, owner: str | None = None, admin_token: str | None = None) -> str:
    return registry().cancel(run_id, owner, admin_token)


def resume(run_id: str, owner: str | None = None, admin_token: str | None = None) -> str:
    return registry().resume(run_id, owner, admin_token)


def rename(run_id: str, name: str, notes: str, owner: str | None = None, admin_token: str | None = None) -> dict:
    return registry().rename(run_id, name, notes, owner, admin_token)


def _estimate(cfg: TrainConfig, root: Path) -> dict | None:
    """The time estimate shown before Start, kept so that the finished run can show estimate vs actual."""
    from engine.hardware import detect
    from engine.runs.eta import estimate

    try:
        return estimate(cfg, "cuda" if detect(runs_root=root).on_gpu else "cpu", root).as_dict()
    except (UserError, OSError, ValueError):
        return None  # an estimate is a courtesy: it never stops a run


def list_runs() -> list[dict]:
    return registry().list_runs()


def run_dir(run_id: str) -> Path:
    """The folder of an existing run (for the Compare tab and exports)."""
    return registry().folder(run_id).path


def status_json(run_id: str) -> str:
    return json.dumps(status(run_id), default=str)
