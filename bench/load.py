"""Load test: N gradio_client sessions explore, mask and fill masks while a run trains.

    python bench/load.py                                  # 20 clients for 60 s against a fresh app
    python bench/load.py --clients 5 --duration 20        # a quick look
    python bench/load.py --url http://127.0.0.1:7860/     # an app that is already running (loopback only)

Without --url it starts `python app.py` on a free loopback port with its own temporary
MLM_RUNS_DIR and MLM_CACHE_DIR. Then:
  1. warm-up: one call of each endpoint (loads the corpus, tokenizer and model once);
  2. starts a training run through /start_training and measures its throughput for
     --baseline seconds with no load (train rows of metrics.jsonl, or /run_status "latest");
  3. N threads, each with its own gradio_client.Client, loop for --duration seconds over a
     mix of /dataset_stats, /mask_preview, /fill_mask and /run_status (random think time of
     0..2*--think seconds between requests; at most --max-requests in all);
  4. measures the run's throughput from the rows logged during the load window, and again
     for --after seconds once the load has stopped (drift from other work on the machine
     shows up as a difference between before and after);
  5. cancels the run and shuts the app down (also on Ctrl-C or an error).
It prints requests, errors, p50 and p95 latency per endpoint, overall requests/s, and the
run's throughput before, during and after the load. Exit code 1 if any request errored.
The load clients run in this process on the same machine: on a small machine they take
CPU from the app and the run too, which is part of the figure. A last table shows how many
cores the worker, the web server, the load clients and everything else used in each phase
(Linux /proc; needs the app started by this script), so a busy neighbour is visible.
--nice-worker N renices the run's worker (an experiment: does the UI gain if training yields?).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from gradio_client import Client
from load_run import (  # bench/ is on sys.path when this file runs as a script
    App,
    RowWatcher,
    cancel_and_wait,
    cpu_snapshot,
    kill_leftover_worker,
    new_client,
    print_cpu,
    renice_worker,
    throughput,
    train_config,
    wait_for_row_after,
    wait_for_rows,
)

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
TEXTS = ["The movie was great fun.", "A slow, boring film with a terrible script.",
         "I loved the acting, but the ending made no sense at all.", "Best horror movie of the decade."]
FILL_TEXTS = ["This is a great [MASK].", "The acting was [MASK].", "I [MASK] this movie."]
MIX = {"dataset_stats": 0.2, "mask_preview": 0.35, "fill_mask": 0.3, "run_status": 0.15}


# ---------------------------------------------------------------- the load


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)
    issued: int = 0

    def take_ticket(self, cap: int) -> bool:
        with self.lock:
            if self.issued >= cap:
                return False
            self.issued += 1
            return True

    def record(self, endpoint: str, seconds: float, error: str | None) -> None:
        with self.lock:
            self.latencies[endpoint].append(seconds)
            if error is not None:
                self.errors[endpoint].append(error)


def call(client: Client, endpoint: str, run_id: str, rng: random.Random, max_docs: int):
    if endpoint == "dataset_stats":  # small and cached after the warm-up
        return client.predict("rotten_tomatoes", "", None, "", "bundled", 128, max_docs, api_name="/dataset_stats")
    if endpoint == "mask_preview":
        return client.predict(text=rng.choice(TEXTS), strategy=rng.choice(["token", "whole_word"]),
                              mlm_probability=rng.choice([0.15, 0.3, 0.5]), seed=rng.randrange(1 << 30),
                              api_name="/mask_preview")
    if endpoint == "fill_mask":
        return client.predict("bundled", rng.choice(FILL_TEXTS), 5, api_name="/fill_mask")
    return client.predict(run_id, api_name="/run_status")


def session(client: Client, run_id: str, args, results: Results, seed: int, deadline: float,
            stop: threading.Event) -> None:
    rng = random.Random(seed)
    names, weights = list(MIX), list(MIX.values())
    while time.time() < deadline and not stop.is_set() and results.take_ticket(args.max_requests):
        endpoint = rng.choices(names, weights)[0]
        start, error = time.perf_counter(), None
        try:
            call(client, endpoint, run_id, rng, args.stats_docs)
        except Exception as exc:  # every failure is a finding: record it and keep going
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
        results.record(endpoint, time.perf_counter() - start, error)
        stop.wait(rng.uniform(0, 2 * args.think))


def run_load(clients: list[Client], run_id: str, args, results: Results, stop: threading.Event
             ) -> tuple[float, float]:
    """(start, end) of the load window."""
    start = time.time()
    deadline = start + args.duration
    threads = [threading.Thread(target=session, args=(c, run_id, args, results, i, deadline, stop), daemon=True)
               for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(timeout=0.5)  # short joins keep Ctrl-C responsive
    return start, min(deadline, time.time())


def warm_up(client: Client, args) -> None:
    rng = random.Random(0)
    for endpoint in ("dataset_stats", "mask_preview", "fill_mask"):
        start = time.perf_counter()
        call(client, endpoint, "", rng, args.stats_docs)
        print(f"warm-up {endpoint}: {time.perf_counter() - start:.1f} s")


# ---------------------------------------------------------------- report


def report(results: Results, window: float, phases: dict[str, dict]) -> int:
    print(f"\n{'endpoint':<15}{'requests':>9}{'errors':>8}{'p50 s':>9}{'p95 s':>9}{'max s':>9}")
    total = errors = 0
    for endpoint in MIX:
        lat = np.array(results.latencies.get(endpoint, []))
        n, e = len(lat), len(results.errors.get(endpoint, []))
        total, errors = total + n, errors + e
        if n:
            p50, p95 = np.percentile(lat, [50, 95])
            print(f"{endpoint:<15}{n:>9}{e:>8}{p50:>9.2f}{p95:>9.2f}{lat.max():>9.2f}")
    every = np.concatenate([np.array(v) for v in results.latencies.values()]) if total else np.zeros(1)
    p50, p95 = np.percentile(every, [50, 95])
    print(f"{'all':<15}{total:>9}{errors:>8}{p50:>9.2f}{p95:>9.2f}{every.max():>9.2f}")
    print(f"overall: {total / max(window, 1e-9):.2f} requests/s over {window:.1f} s")
    for endpoint, messages in results.errors.items():
        for message in messages[:3]:
            print(f"  error in /{endpoint}: {message}")
    print("\nrun throughput (train rows of metrics.jsonl whose whole log window lies in each phase):")
    for name, t in phases.items():
        if t.get("rows"):
            print(f"  {name}: {t['tokens_per_s']:.0f} tokens/s (logged step time), "
                  f"{t['samples_per_s_wall']:.2f} samples/s (wall), {t['steps']} steps in {t['rows']} rows")
        else:
            print(f"  {name}: no complete log window (raise --baseline or --duration, or lower --log-every)")
    during = phases["during load"]
    for name in ("before load", "after load"):
        base = phases[name]
        if base.get("rows") and during.get("rows"):
            ratio = during["tokens_per_s"] / base["tokens_per_s"]
            wall = during["samples_per_s_wall"] / base["samples_per_s_wall"]
            print(f"  during/{name.split()[0]}: {ratio:.2f} tokens/s (drop {1 - ratio:.0%}), "
                  f"{wall:.2f} wall samples/s (drop {1 - wall:.0%})")
    return 1 if errors else 0


# ---------------------------------------------------------------- main


def clean_up(app: App, controller: Client | None, run_id: str | None, watcher: RowWatcher | None,
             stop: threading.Event) -> None:
    """Stop the sessions, cancel the run, stop the app: each step even if one before it failed."""
    stop.set()
    if watcher is not None:
        watcher.stop_event.set()
    try:
        if run_id is not None and controller is not None:
            print(f"run {run_id}: {cancel_and_wait(controller, run_id)}")
    finally:
        try:
            if run_id is not None:
                kill_leftover_worker(app, run_id)
        finally:
            app.stop()


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=20, help="simultaneous gradio_client sessions")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    p.add_argument("--baseline", type=float, default=25.0, help="seconds of training measured with no load")
    p.add_argument("--after", type=float, default=15.0,
                   help="seconds of training measured after the load (other work on the machine shows as drift)")
    p.add_argument("--nice-worker", type=int, default=0,
                   help="experiment: renice the run's worker by this much (needs the app started here)")
    p.add_argument("--url", help="a running app on this machine (loopback only); default: start one")
    p.add_argument("--model", default="bundled", help="model of the training run: 'bundled' or a local folder")
    p.add_argument("--max-docs", type=int, default=300, help="IMDb reviews for the training run")
    p.add_argument("--stats-docs", type=int, default=200, help="Rotten Tomatoes snippets for /dataset_stats")
    p.add_argument("--max-requests", type=int, default=20_000, help="cap on requests in all")
    p.add_argument("--think", type=float, default=0.5, help="mean seconds a session waits between requests")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--log-every", type=int, default=1, help="optimizer steps per train row")
    p.add_argument("--max-steps", type=int, default=5000, help="enough to outlast the load; cancelled at the end")
    args = p.parse_args(argv)
    if args.url:
        host = urlparse(args.url).hostname
        if host not in LOOPBACK:
            p.error(f"--url must point at this machine (127.0.0.1 or localhost), not {host!r}")
        args.url = args.url.rstrip("/") + "/"
    if args.clients < 1 or args.duration <= 0:
        p.error("--clients must be at least 1 and --duration positive")
    return args


def interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parse_args(argv)
    # Ctrl-C and a plain kill both clean up (a shell's background job starts with SIGINT ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)
    print(f"load: {args.clients} clients for {args.duration:.0f} s, think {args.think} s mean, "
          f"run: {args.model} full, batch {args.batch_size}, {args.max_docs} IMDb reviews; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="mlm-load-") as tmp:
        app = App(args.url) if args.url else App.start(Path(tmp))
        print(f"app at {app.url}" + (f" (log {app.log_path})" if app.log_path else ""))
        controller, run_id, watcher, stop = None, None, None, threading.Event()
        try:
            controller = new_client(app.url)
            warm_up(controller, args)
            run_id = controller.predict(train_config(args), api_name="/start_training")["run_id"]
            print(f"run {run_id} started; waiting for its first train rows")
            watcher = RowWatcher(run_id, app)
            watcher.start()
            wait_for_rows(controller, watcher, run_id, 2, timeout=300)
            if args.nice_worker:
                renice_worker(app, run_id, args.nice_worker)
            cpu = {"before load": [cpu_snapshot(app, run_id)]}
            time.sleep(args.baseline)
            cpu["before load"].append(cpu_snapshot(app, run_id))
            print(f"baseline measured for {args.baseline:.0f} s; starting {args.clients} sessions")
            results = Results()
            clients = [new_client(app.url) for _ in range(args.clients)]  # connected before the clock starts
            cpu["during load"] = [cpu_snapshot(app, run_id)]
            load_start, load_end = run_load(clients, run_id, args, results, stop)
            cpu["during load"].append(cpu_snapshot(app, run_id))
            wait_for_row_after(watcher, load_end, timeout=60)  # the row that closes the load window
            cpu["after load"] = [cpu_snapshot(app, run_id)]
            time.sleep(args.after)
            cpu["after load"].append(cpu_snapshot(app, run_id))
            wait_for_row_after(watcher, cpu["after load"][1][0], timeout=60)
            watcher.stop_event.set()
            watcher.join(timeout=10)
            windows = {name: (a[0], b[0]) for name, (a, b) in cpu.items()}
            windows["during load"] = (load_start, load_end)
            phases = {name: throughput(watcher.rows, *w, args.batch_size) for name, w in windows.items()}
            code = report(results, load_end - load_start, phases)
            print_cpu(cpu)
            return code
        except KeyboardInterrupt:
            print("interrupted: cleaning up")
            return 130
        finally:
            clean_up(app, controller, run_id, watcher, stop)


if __name__ == "__main__":
    sys.exit(main())
