#!/usr/bin/env python3
"""python_bench — the Python package's speed, beside redis-py and RQ.

    python3 bench/python_bench.py [--runs 3] [--messages 1000000] [--no-peers]

Prints medians of --runs runs with min-max for:

  (a) subscriber drain: --messages 16-byte messages published while the
      subscriber is not reading (the server buffers them: this bench's
      redis-server runs with client-output-buffer-limit pubsub 0 0 0), then
      read as fast as possible. reactis through listen() and through the
      batch API get_messages(); redis-py through a get_message() loop with
      its hiredis parser. Timed from the first read to the last.
  (b) Queue.work() draining 100,000 due messages with a no-op handler (acks
      included), with the adaptive batch and with batch=1.
  (c) scheduling: Queue.schedule() one call per message, schedule_many(),
      and RQ's enqueue_in() / enqueue() (one call per job) for comparison.

It starts its own redis-server (RX_REDIS_SERVER or redis-server on PATH) on
a free loopback port. redis-py (with hiredis) and RQ are installed from PyPI
into build-py/bench-deps the first time (not into your environment);
--no-peers skips them. Not a test: figures vary with the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
PY_DIR = ROOT / "bindings" / "python"
if list((PY_DIR / "reactis").glob("_cimpl*.so")):
    sys.path.insert(0, str(PY_DIR))

import reactis  # noqa: E402

DEPS = ROOT / "build-py" / "bench-deps"


# ---------------------------------------------------------------- the server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self) -> None:
        binary = os.environ.get("RX_REDIS_SERVER") or shutil.which("redis-server")
        if not binary:
            sys.exit("python_bench: redis-server not found (set RX_REDIS_SERVER)")
        self.dir = tempfile.mkdtemp(prefix="rx-pybench-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--client-output-buffer-limit",
             "pubsub 0 0 0", "--logfile", os.path.join(self.dir, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = "redis://127.0.0.1:%d/0" % self.port
        deadline = time.monotonic() + 10
        while True:
            try:
                with reactis.Client(self.url) as c:
                    if c.ping():
                        break
            except reactis.Error:
                if time.monotonic() > deadline:
                    sys.exit("python_bench: redis-server did not start")
                time.sleep(0.05)
        with reactis.Client(self.url) as c:
            info = c.command("INFO", "server").decode()
        self.version = next((ln.split(":", 1)[1].strip() for ln in info.splitlines()
                             if ln.startswith("redis_version:")), "?")

    def flush(self) -> None:
        with reactis.Client(self.url) as c:
            c.command("FLUSHALL")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- helpers

def report(label: str, values: List[float], unit: str = "msg/s") -> float:
    values = [v for v in values if v > 0]
    if not values:
        print("  %-44s failed" % label)
        return 0.0
    med = statistics.median(values)
    print("  %-44s median %11s %s   (min %s, max %s, %d runs)" % (
        label, "{:,.0f}".format(med), unit, "{:,.0f}".format(min(values)),
        "{:,.0f}".format(max(values)), len(values)))
    sys.stdout.flush()
    return med


def publish_backlog(port: int, channel: bytes, n: int) -> None:
    """PUBLISHes n 16-byte messages, pipelined over a raw socket (replies
    read by a thread), and returns when the server answered them all: the
    backlog then sits in the subscribers' output buffers."""
    s = socket.create_connection(("127.0.0.1", port))
    head = b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$16\r\n" % (len(channel), channel)
    done = threading.Event()
    bad = []

    def reader() -> None:
        got, tail = 0, b""
        while got < n:
            b = s.recv(1 << 20)
            if not b:
                break
            data = tail + b
            got += data.count(b"\r\n")
            tail = data[data.rfind(b"\r\n") + 2:]
            if b":0\r\n" in data:
                bad.append(1)
        done.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    chunk = 20000
    for i in range(0, n, chunk):
        s.sendall(b"".join(head + b"%016d\r\n" % j for j in range(i, min(n, i + chunk))))
    done.wait()
    s.close()
    if bad:
        raise RuntimeError("a message was published with no subscriber")


# ---------------------------------------------------------------- peers

def load_peers(skip: bool) -> Dict[str, object]:
    """redis-py (+hiredis) and rq, installed into build-py/bench-deps."""
    if skip:
        return {}
    if not (DEPS / "redis").exists() or not (DEPS / "rq").exists() or \
            not list(DEPS.glob("hiredis*")):
        print("installing redis[hiredis] and rq from PyPI into %s ..." % DEPS)
        DEPS.mkdir(parents=True, exist_ok=True)
        p = subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                            "--disable-pip-version-check", "--target", str(DEPS),
                            "redis[hiredis]", "rq"], capture_output=True, text=True)
        if p.returncode != 0:
            print("  could not install the peers (%s); their figures are skipped"
                  % p.stderr.strip().splitlines()[-1:])
            return {}
    sys.path.insert(0, str(DEPS))
    peers: Dict[str, object] = {}
    try:
        import redis  # type: ignore

        peers["redis"] = redis
    except ImportError as e:
        print("  redis-py unavailable: %s" % e)
    try:
        import rq  # type: ignore

        peers["rq"] = rq
    except ImportError as e:
        print("  rq unavailable: %s" % e)
    return peers


# ---------------------------------------------------------------- (a) drain

def drain_reactis_listen(srv: Server, n: int) -> float:
    with reactis.Subscriber(srv.url, health_check_interval=0) as sub:
        sub.subscribe("bench")
        publish_backlog(srv.port, b"bench", n)
        got = 0
        t0 = time.perf_counter()
        for msg in sub.listen():
            got += 1
            if got == n:
                break
        t = time.perf_counter() - t0
    assert msg.data == b"%016d" % (n - 1)
    return n / t


def drain_reactis_batch(srv: Server, n: int) -> float:
    with reactis.Subscriber(srv.url, health_check_interval=0) as sub:
        sub.subscribe("bench")
        publish_backlog(srv.port, b"bench", n)
        got = 0
        t0 = time.perf_counter()
        while got < n:
            batch = sub.get_messages(timeout=5.0)
            if not batch:
                break
            for msg in batch:
                pass
            got += len(batch)
        t = time.perf_counter() - t0
    assert got == n and msg.data == b"%016d" % (n - 1)
    return n / t


def drain_redis_py(srv: Server, n: int, redis: object) -> float:
    r = redis.Redis(host="127.0.0.1", port=srv.port)  # type: ignore[attr-defined]
    p = r.pubsub(ignore_subscribe_messages=True)
    p.subscribe("bench")
    while p.get_message(timeout=1.0) is None and not p.subscribed:
        pass
    publish_backlog(srv.port, b"bench", n)
    got = 0
    t0 = time.perf_counter()
    while got < n:
        m = p.get_message(timeout=1.0)
        if m is not None:
            got += 1
    t = time.perf_counter() - t0
    assert m["data"] == b"%016d" % (n - 1)
    p.close()
    r.close()
    return n / t


# ---------------------------------------------------------------- (b) work

def work_drain(srv: Server, n: int, batch: Optional[int]) -> float:
    srv.flush()
    name = "bench.work"
    with reactis.Queue(name, srv.url) as q:
        for i in range(0, n, 10000):
            q.schedule_many([b"%016d" % j for j in range(i, min(n, i + 10000))])
        # Let the first fetch find them all due.
        time.sleep(0.01)
        t0 = time.perf_counter()
        handled = q.work(lambda job: None, batch=batch, burst=True, handle_signals=False)
        t = time.perf_counter() - t0
        st = q.stats()
    if handled != n or st.acked != n or st.in_flight:
        print("  work: handled %d of %d, acked %d" % (handled, n, st.acked))
        return 0.0
    return n / t


# ---------------------------------------------------------------- (c) schedule

def schedule_each(srv: Server, n: int) -> float:
    srv.flush()
    with reactis.Queue("bench.sched", srv.url) as q:
        payload = b"x" * 16
        t0 = time.perf_counter()
        for i in range(n):
            q.schedule(payload, delay=900, id="m%d" % i)
        t = time.perf_counter() - t0
        assert q.stats().scheduled == n
    return n / t


def schedule_many(srv: Server, n: int) -> float:
    srv.flush()
    with reactis.Queue("bench.sched", srv.url) as q:
        msgs = [{"payload": b"x" * 16, "delay": 900, "id": "m%d" % i} for i in range(n)]
        t0 = time.perf_counter()
        for i in range(0, n, 10000):
            q.schedule_many(msgs[i:i + 10000])
        t = time.perf_counter() - t0
        assert q.stats().scheduled == n
    return n / t


def ping_rate(srv: Server, n: int) -> float:
    """Round trips per second of a bare PING: the ceiling of any client
    that waits for each reply (one call, one round trip) on this machine."""
    with reactis.Client(srv.url) as c:
        c.ping()
        t0 = time.perf_counter()
        for _ in range(n):
            c.ping()
        return n / (time.perf_counter() - t0)


def rq_enqueue(srv: Server, n: int, peers: Dict[str, object], delayed: bool) -> float:
    import datetime

    srv.flush()
    redis, rq = peers["redis"], peers["rq"]
    conn = redis.Redis(host="127.0.0.1", port=srv.port)  # type: ignore[attr-defined]
    q = rq.Queue("bench", connection=conn)  # type: ignore[attr-defined]
    payload = "x" * 16
    delay = datetime.timedelta(seconds=900)
    t0 = time.perf_counter()
    if delayed:
        for _ in range(n):
            q.enqueue_in(delay, "builtins.len", payload)
    else:
        for _ in range(n):
            q.enqueue("builtins.len", payload)
    t = time.perf_counter() - t0
    conn.close()
    return n / t


# ---------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--messages", type=int, default=1_000_000, help="drain backlog (1,000,000)")
    ap.add_argument("--work", type=int, default=100_000, help="work drain (100,000)")
    ap.add_argument("--schedule", type=int, default=50_000, help="schedule calls (50,000)")
    ap.add_argument("--rq", type=int, default=10_000, help="RQ enqueues (10,000)")
    ap.add_argument("--no-peers", action="store_true", help="skip redis-py and RQ")
    args = ap.parse_args()
    if args.runs < 3:
        print("python_bench: --runs below 3 gives no meaningful median; using 3")
        args.runs = 3

    peers = load_peers(args.no_peers)
    srv = Server()
    try:
        import platform

        hi = ""
        if "redis" in peers:
            redis = peers["redis"]
            try:
                import hiredis  # type: ignore

                hi = ", hiredis-py %s" % hiredis.__version__
            except ImportError:
                hi = ", no hiredis"
            hi = "; redis-py %s%s" % (redis.__version__, hi)  # type: ignore[attr-defined]
            if "rq" in peers:
                hi += ", rq %s" % peers["rq"].__version__  # type: ignore[attr-defined]
        print("python_bench: Python %s, reactis %s%s, redis %s, %d CPUs, %d runs" % (
            platform.python_version(), reactis.__version__, hi, srv.version,
            os.cpu_count() or 0, args.runs))

        print("(a) subscriber drain: %s messages of 16 bytes buffered by the server"
              % "{:,}".format(args.messages))
        a: Dict[str, List[float]] = {"listen": [], "batch": [], "redis-py": []}
        for _ in range(args.runs):  # alternate, so none gets a warmer machine
            a["listen"].append(drain_reactis_listen(srv, args.messages))
            a["batch"].append(drain_reactis_batch(srv, args.messages))
            if "redis" in peers:
                a["redis-py"].append(drain_redis_py(srv, args.messages, peers["redis"]))
        m1 = report("reactis Subscriber.listen()", a["listen"])
        m2 = report("reactis Subscriber.get_messages() batches", a["batch"])
        if a["redis-py"]:
            m3 = report("redis-py PubSub.get_message() loop, hiredis", a["redis-py"])
            print("  ratio reactis/redis-py: listen %.2f, batches %.2f" % (m1 / m3, m2 / m3))

        print("(b) Queue.work(): drain %s due messages, no-op handler, acks included"
              % "{:,}".format(args.work))
        b1 = [work_drain(srv, args.work, None) for _ in range(args.runs)]
        report("work(handler) adaptive batch", b1)
        n1 = max(1000, args.work // 5)
        b2 = [work_drain(srv, n1, 1) for _ in range(args.runs)]
        report("work(handler, batch=1) (%s messages)" % "{:,}".format(n1), b2)

        print("(c) scheduling 16-byte messages due in 15 minutes, each with an id")
        c0, c1, c2, r1, r2 = [], [], [], [], []
        for _ in range(args.runs):
            c0.append(ping_rate(srv, 10000))
            c1.append(schedule_each(srv, args.schedule))
            c2.append(schedule_many(srv, args.schedule))
            if "rq" in peers:
                r1.append(rq_enqueue(srv, args.rq, peers, True))
                r2.append(rq_enqueue(srv, args.rq, peers, False))
        report("baseline: Client.ping(), one round trip", c0, "calls/s")
        report("reactis Queue.schedule() per message", c1)
        report("reactis Queue.schedule_many() 10,000 a call", c2)
        if r1:
            report("RQ Queue.enqueue_in() per job (%s)" % "{:,}".format(args.rq), r1)
            report("RQ Queue.enqueue() per job, not delayed", r2)
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
