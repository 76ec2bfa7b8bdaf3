"""Ingest benchmark: `sitepulse serve` against a bare Starlette ceiling, with wrk, on loopback.

Runs, in one go: single-event beacons against the ceiling app (bench/ceiling_app.py)
and against sitepulse, then 20-event batches against both. The server's RSS is
sampled every 100 ms for its whole life. After SIGTERM the DuckDB file is opened
read-only to check that every 202 wrk counted has its row.

Progress goes to stderr; the last line on stdout is one JSON object with every figure.
Run from the repository root: `.venv/bin/python bench/ingest.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import httpx
import yaml

BENCH = Path(__file__).resolve().parent
SCRIPT = BENCH / "collect.lua"
SITE_KEY = "pk_bench"
SITE_HOST = "www.bench.example"
BATCH_EVENTS = 20
WARMUP_SECS = 3
CHROME_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"
)

TARGET_BEACON_RATIO = 0.45
TARGET_BEACON_P99_MS = 25.0
TARGET_BATCH_EVENTS_PER_S = 80_000
TARGET_MAX_RSS_MB = 200.0


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Pinning:
    """CPU sets for the server under test and for wrk; empty means unpinned."""

    server: str
    load: str

    def prefix(self, cpus: str) -> list[str]:
        return ["taskset", "-c", cpus] if cpus else []


PINNINGS = {
    "split": Pinning(server="0", load="1"),
    "none": Pinning(server="", load=""),
}


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run reported through the script's `done()` hook."""

    requests: int
    duration_s: float
    status_errors: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    events_per_request: int

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s

    @property
    def events_per_s(self) -> float:
        return self.rps * self.events_per_request

    @property
    def accepted(self) -> int:
        """Answers below 400 (wrk counts >= 400 as status errors); 202 is all we send back."""
        return self.requests - self.status_errors

    def line(self) -> str:
        return (
            f"{self.rps:,.0f} req/s ({self.events_per_s:,.0f} events/s), "
            f"p50 {self.p50_ms:.2f} ms, p99 {self.p99_ms:.2f} ms, "
            f"max {self.max_ms:.1f} ms, non-2xx {self.status_errors}, "
            f"socket errors {self.socket_errors}"
        )


def run_wrk(
    url: str, *, events: int, connections: int, duration: int, seed: int, pinning: Pinning
) -> WrkResult:
    """One bounded wrk run (it stops itself after `duration`; we kill it after twice that)."""
    cmd = [
        *pinning.prefix(pinning.load),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(SCRIPT),
        url,
        "--",
        str(events),
        str(seed),
        SITE_KEY,
        "2000",
    ]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=duration * 2 + 30, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    found = [ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")]
    if not found:
        raise RuntimeError(f"wrk printed no summary: {done.stdout}")
    raw: dict[str, Any] = json.loads(found[-1].removeprefix("BENCH_JSON "))
    return WrkResult(
        requests=int(raw["requests"]),
        duration_s=raw["duration_us"] / 1e6,
        status_errors=int(raw["status_errors"]),
        socket_errors=sum(
            int(raw[k]) for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
        ),
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        p999_ms=raw["p999_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        events_per_request=events,
    )


class RssSampler:
    """Samples VmRSS of one process every `interval` seconds and keeps the maximum."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self._status = Path(f"/proc/{pid}/status")
        self._interval = interval
        self._stop = threading.Event()
        self.max_kb = 0
        self.window_kb = 0
        self.samples = 0
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _read_kb(self) -> int | None:
        try:
            text = self._status.read_text()
        except OSError:
            return None  # the process has exited
        for line in text.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return None

    def _run(self) -> None:
        while not self._stop.is_set():
            kb = self._read_kb()
            if kb is not None:
                self.max_kb = max(self.max_kb, kb)
                self.window_kb = max(self.window_kb, kb)
                self.samples += 1
            self._stop.wait(self._interval)

    @property
    def max_mb(self) -> float:
        return self.max_kb / 1024

    def window_mb(self) -> float:
        """The maximum since the previous call (or the start), in MB."""
        kb, self.window_kb = self.window_kb, 0
        return kb / 1024


def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}: {log.read_text(errors='replace')}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        time.sleep(0.05)  # readiness poll, bounded by the deadline
    raise RuntimeError(f"not ready after {timeout}s: {log.read_text(errors='replace')}")


@contextlib.contextmanager
def process(
    cmd: list[str], *, env: dict[str, str], log: Path, ready_url: str, cwd: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process that is ready on entry and stopped with SIGTERM on exit."""
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    try:
        wait_ready(proc, ready_url, log)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def beacon_body(events: int) -> dict[str, Any]:
    now = time.time_ns() // 1_000_000
    page = f"https://{SITE_HOST}/pricing"
    return {
        "site_key": SITE_KEY,
        "events": [
            {"event_id": str(uuid.uuid4()), "ts": now, "type": "pageview", "url": page}
            for _ in range(events)
        ],
        "sent_at": now,
    }


def probe(url: str, *, expect: int) -> None:
    """One request shaped like the wrk ones, so a validation error shows before the run."""
    resp = httpx.post(
        url,
        json=beacon_body(1),
        timeout=10.0,
        headers={"User-Agent": CHROME_UA, "Content-Type": "text/plain"},
    )
    if resp.status_code != expect:
        raise RuntimeError(f"probe of {url} answered {resp.status_code}: {resp.text}")


def write_config(path: Path, data_dir: Path, memory_limit_mb: int | None = None) -> None:
    storage: dict[str, Any] = {"path": str(data_dir)}
    if memory_limit_mb is not None:
        storage["memory_limit_mb"] = memory_limit_mb
    config = {
        "storage": storage,
        # Deep enough that back pressure (429) never triggers under closed-loop load.
        "ingest": {"queue_max_events": 500_000},
        "sites": [
            {
                "id": "bench",
                "name": "Bench",
                "public_key": SITE_KEY,
                "token": "sk_bench_0123456789abcdef",
                "hosts": [SITE_HOST],
            }
        ],
    }
    path.write_text(yaml.safe_dump(config))


CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu_s() -> tuple[float, float]:
    """(busy, stolen) CPU seconds on all cores since boot.

    Steal is time the hypervisor gave our virtual CPUs to someone else: on a
    shared host it makes every figure here smaller, the ceiling's included.
    """
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in cpu[:8])
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_quiet(max_wait_s: float, cores: float = 0.3) -> float:
    """Wait (at most `max_wait_s`) until the machine is nearly idle; returns the last load.

    The servers are idle here, so what burns CPU is someone else's work, which
    would skew the next run. Bounded: after `max_wait_s` the run goes ahead anyway.
    """
    deadline = time.monotonic() + max_wait_s
    while True:
        busy0, steal0 = machine_cpu_s()
        time.sleep(1.0)  # one-second load sample
        busy1, steal1 = machine_cpu_s()
        load = busy1 - busy0 + steal1 - steal0
        if load < cores or time.monotonic() >= deadline:
            return load


@dataclass
class Scenario:
    """A warmed-up measured wrk run with its CPU accounting.

    `foreign_cpu_s` is what other processes (and the kernel's own work) burnt
    meanwhile and `steal_s` what the hypervisor took: when either is large the
    figures are noisy.
    """

    result: WrkResult
    warmup_accepted: int
    server_cpu_s: float
    wrk_cpu_s: float
    foreign_cpu_s: float
    steal_s: float

    @property
    def requests_per_cpu_s(self) -> float:
        return self.result.requests / self.server_cpu_s if self.server_cpu_s else 0.0


@dataclass(frozen=True)
class Load:
    """How every scenario is driven."""

    connections: int
    duration: int
    pinning: Pinning
    quiet_wait: float


def scenario(name: str, url: str, *, pid: int, events: int, seed: int, load: Load) -> Scenario:
    if load.quiet_wait > 0:
        cores = wait_quiet(load.quiet_wait)
        say(f"{name}: machine load before the run {cores:.2f} cores")
    say(f"{name}: warm-up {WARMUP_SECS}s")
    warm = run_wrk(
        url,
        events=events,
        connections=load.connections,
        duration=WARMUP_SECS,
        seed=seed,
        pinning=load.pinning,
    )
    say(f"{name}: measuring {load.duration}s with {load.connections} connections")
    cpu0, wrk0, (busy0, steal0) = process_cpu_s(pid), children_cpu_s(), machine_cpu_s()
    result = run_wrk(
        url,
        events=events,
        connections=load.connections,
        duration=load.duration,
        seed=seed + 1,
        pinning=load.pinning,
    )
    server_cpu = process_cpu_s(pid) - cpu0
    wrk_cpu = children_cpu_s() - wrk0
    busy1, steal1 = machine_cpu_s()
    foreign = max(busy1 - busy0 - server_cpu - wrk_cpu, 0.0)
    steal = steal1 - steal0
    say(f"{name}: {result.line()}")
    say(
        f"{name}: server CPU {server_cpu:.1f}s, wrk CPU {wrk_cpu:.1f}s, other processes and"
        f" kernel {foreign:.1f}s, stolen by the hypervisor {steal:.1f}s,"
        f" over {result.duration_s:.1f}s"
    )
    if foreign + steal > 0.1 * result.duration_s:
        say(f"{name}: WARNING {foreign + steal:.1f} CPU-s went elsewhere: figures are noisy")
    return Scenario(result, warm.accepted * events, server_cpu, wrk_cpu, foreign, steal)


def count_rows(db_file: Path) -> tuple[int, int]:
    con = duckdb.connect(str(db_file), read_only=True)
    try:
        row = con.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone()
    finally:
        con.close()
    assert row is not None
    return int(row[0]), int(row[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=15, help="seconds per measured run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument(
        "--pin",
        choices=sorted(PINNINGS),
        default="split",
        help="split: server on CPU 0, wrk on CPU 1; none: unpinned",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=int(time.time()),
        help="seeds the event ids; each run adds its own offset",
    )
    parser.add_argument(
        "--memory-limit-mb",
        type=int,
        default=None,
        help="storage.memory_limit_mb for the server (default: the server's)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="seconds to wait at most for other load to stop before each run",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    args = parser.parse_args()
    if not 1 <= args.duration <= 300 or not 1 <= args.connections <= 1000:
        parser.error("--duration must be 1..300 and --connections 1..1000")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed")
    pinning = PINNINGS[args.pin]
    work = Path(tempfile.mkdtemp(prefix="sitepulse-bench-"))
    say(f"work folder {work}; pinning {args.pin}")
    try:
        report = measure(
            work,
            args.duration,
            args.connections,
            args.seed,
            pinning,
            args.memory_limit_mb,
            args.quiet_wait,
        )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report), flush=True)


def measure(
    work: Path,
    duration: int,
    connections: int,
    seed: int,
    pinning: Pinning,
    memory_limit_mb: int | None,
    quiet_wait: float,
) -> dict[str, Any]:
    """Both servers run side by side; their scenarios alternate so drift hits both alike."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    data = work / "data"
    config = work / "sitepulse.yaml"
    write_config(config, data, memory_limit_mb)
    ceiling_port, server_port = free_port(), free_port()
    ceiling_url = f"http://127.0.0.1:{ceiling_port}/collect"
    server_base = f"http://127.0.0.1:{server_port}"
    server_url = f"{server_base}/api/v1/collect"
    ceiling_cmd = [
        *pinning.prefix(pinning.server),
        sys.executable,
        str(BENCH / "ceiling_app.py"),
        "--port",
        str(ceiling_port),
    ]
    server_cmd = [
        *pinning.prefix(pinning.server),
        sys.executable,
        "-m",
        "sitepulse",
        "serve",
        "--port",
        str(server_port),
    ]
    load = Load(connections, duration, pinning, quiet_wait)
    say("starting the ceiling app and sitepulse serve")
    with contextlib.ExitStack() as stack:
        ceiling_proc = stack.enter_context(
            process(ceiling_cmd, env=env, log=work / "ceiling.log", ready_url=ceiling_url, cwd=work)
        )
        server_proc = stack.enter_context(
            process(
                server_cmd,
                env=dict(env, SITEPULSE_CONFIG=str(config)),
                log=work / "server.log",
                ready_url=f"{server_base}/readyz",
                cwd=work,
            )
        )
        sampler = RssSampler(server_proc.pid)
        sampler.start()
        probe(ceiling_url, expect=202)
        probe(server_url, expect=202)
        rss = {"idle": sampler.window_mb()}
        ceiling = scenario(
            "ceiling beacons", ceiling_url, pid=ceiling_proc.pid, events=1, seed=seed, load=load
        )
        sampler.window_mb()
        beacon = scenario(
            "sitepulse beacons",
            server_url,
            pid=server_proc.pid,
            events=1,
            seed=seed + 10,
            load=load,
        )
        rss["beacons"] = sampler.window_mb()
        ceiling_batch = scenario(
            "ceiling batches",
            ceiling_url,
            pid=ceiling_proc.pid,
            events=BATCH_EVENTS,
            seed=seed + 20,
            load=load,
        )
        sampler.window_mb()
        batch = scenario(
            "sitepulse batches",
            server_url,
            pid=server_proc.pid,
            events=BATCH_EVENTS,
            seed=seed + 30,
            load=load,
        )
        rss["batches"] = sampler.window_mb()
        say("stopping both servers (SIGTERM)")
    # Stopped only now so that the shutdown (final commit, checkpoint) is sampled too.
    sampler.stop()
    rss["shutdown"] = sampler.window_mb()
    say("server RSS max (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in rss.items()))

    wal = data / "sitepulse.duckdb.wal"
    wal_bytes = wal.stat().st_size if wal.exists() else 0
    warnings = [
        ln.strip()
        for ln in (work / "server.log").read_text(errors="replace").splitlines()
        if "WARNING" in ln or "ERROR" in ln
    ]
    for line in warnings:
        say(f"server log: {line}")
    rows, distinct = count_rows(data / "sitepulse.duckdb")
    runs = (beacon, batch)
    acked = 1 + sum(
        s.result.accepted * s.result.events_per_request + s.warmup_accepted for s in runs
    )
    # wrk stops with requests in flight; the server may still commit them, so up
    # to one request per connection per wrk run beyond what wrk counted may be stored.
    in_flight = sum(2 * connections * s.result.events_per_request for s in runs)
    durable = acked <= rows <= acked + in_flight and rows == distinct
    say(
        f"rows {rows:,} (distinct ids {distinct:,}); events acknowledged to wrk {acked:,}; "
        f"allowed in-flight surplus {in_flight:,}"
    )

    everything = (ceiling, beacon, ceiling_batch, batch)
    ratio = beacon.result.rps / ceiling.result.rps
    # Requests per CPU-second, sitepulse over ceiling: steadier than rps on a shared host.
    cpu_ratio = (
        beacon.requests_per_cpu_s / ceiling.requests_per_cpu_s
        if ceiling.requests_per_cpu_s
        else 0.0
    )
    non_2xx = sum(s.result.status_errors for s in everything)
    socket_errors = sum(s.result.socket_errors for s in everything)
    targets = {
        "beacon_ratio": ratio >= TARGET_BEACON_RATIO,
        "beacon_p99": beacon.result.p99_ms < TARGET_BEACON_P99_MS,
        "batch_events_per_s": batch.result.events_per_s >= TARGET_BATCH_EVENTS_PER_S,
        "max_rss": sampler.max_mb <= TARGET_MAX_RSS_MB,
        "durable": durable,
        "no_errors": non_2xx == 0 and socket_errors == 0,
    }
    return {
        "ceiling_rps": round(ceiling.result.rps, 1),
        "ceiling_p99_ms": ceiling.result.p99_ms,
        "ceiling_batch_events_per_s": round(ceiling_batch.result.events_per_s, 1),
        "beacon_rps": round(beacon.result.rps, 1),
        "beacon_ratio": round(ratio, 3),
        "beacon_cpu_ratio": round(cpu_ratio, 3),
        "beacon_p50_ms": beacon.result.p50_ms,
        "beacon_p99_ms": beacon.result.p99_ms,
        "batch_rps": round(batch.result.rps, 1),
        "batch_events_per_s": round(batch.result.events_per_s, 1),
        "batch_p50_ms": batch.result.p50_ms,
        "batch_p99_ms": batch.result.p99_ms,
        "max_rss_mb": round(sampler.max_mb, 1),
        "rss_mb_by_phase": {k: round(v, 1) for k, v in rss.items()},
        "rss_samples": sampler.samples,
        "non_2xx": non_2xx,
        "socket_errors": socket_errors,
        "rows": rows,
        "acked_events": acked,
        "durable_rows_ok": durable,
        "wal_bytes_after_stop": wal_bytes,
        "server_log_warnings": warnings[:5],
        "server_cpu_s": {
            "ceiling_beacons": round(ceiling.server_cpu_s, 2),
            "beacons": round(beacon.server_cpu_s, 2),
            "ceiling_batches": round(ceiling_batch.server_cpu_s, 2),
            "batches": round(batch.server_cpu_s, 2),
        },
        "foreign_cpu_s": round(sum(s.foreign_cpu_s for s in everything), 1),
        "steal_cpu_s": round(sum(s.steal_s for s in everything), 1),
        "connections": connections,
        "duration_s": duration,
        "pinning": "split" if pinning.server else "none",
        "memory_limit_mb": memory_limit_mb,
        "targets_met": targets,
    }


if __name__ == "__main__":
    main()
