"""The benchmark harness: reactis (C and the bindings) and its peers, in one
run, on one redis-server that this script starts on a free loopback port.

Run through bench/run.sh (it builds and installs first). Directly:

    python bench/harness/run.py [--quick] [--tiny] [--case N ...] [--runs R]

Only the standard library is needed here (redis-cli talks to the server);
matplotlib, when importable, draws the plots. Every driver is a separate
process speaking a tiny protocol (see pydrive.py), so each system runs in
its own process with its own client library, one at a time.
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
ROOT = os.path.dirname(BENCH)
BUILD = os.path.join(ROOT, "build-bench")
VENV_PY = os.path.join(BENCH, ".venv", "bin", "python")
PY = VENV_PY if os.path.exists(VENV_PY) else sys.executable
GEMS = os.path.join(BENCH, ".gems")

# ---------------------------------------------------------------- systems
#
# name: (label, command prefix, operations, the kind of thing it is)
# "queue" systems produce + consume; "sub" systems read pub/sub.


def _sys_table():
    rx = os.path.join(BUILD, "rxdrive")
    pyd = [PY, os.path.join(HERE, "pydrive.py")]
    node = ["node", os.path.join(HERE, "nodedrive.js")]
    rb = ["ruby", os.path.join(HERE, "rbdrive.rb")]
    return {
        "reactis-c": ("reactis C (fetch 100, acks sent with the next fetch)", [rx], {"produce", "consume", "sub"}),
        "reactis-py": ("reactis Python, defaults (jobs() + with job:)", pyd + ["reactis-py"], {"produce", "consume", "sub"}),
        "reactis-py-b": ("reactis Python, tuned (fetch 100, acks sent with the next fetch)", pyd + ["reactis-py-b"], {"produce", "consume"}),
        "reactis-rb": ("reactis Ruby", rb + ["reactis-rb"], {"produce", "consume", "sub"}),
        "rq": ("RQ, defaults (Worker: fork per job)", pyd + ["rq"], {"produce", "consume"}),
        "rq-simple": ("RQ, tuned (SimpleWorker)", pyd + ["rq-simple"], {"produce", "consume"}),
        "celery": ("Celery, Redis broker (solo pool)", pyd + ["celery"], {"produce", "consume"}),
        "sidekiq": ("Sidekiq, defaults (concurrency 10)", rb + ["sidekiq"], {"produce", "consume"}),
        "bullmq": ("BullMQ, defaults (concurrency 1)", node + ["bullmq"], {"produce", "consume"}),
        "keyspace": ("keyspace recipe (SET PX + PSUBSCRIBE expired, redis-py)", pyd + ["keyspace"], {"produce", "consume"}),
        "redis-py": ("redis-py + hiredis (listen)", pyd + ["redis-py"], {"sub"}),
        "redis-rb": ("redis-rb + hiredis (subscribe block)", rb + ["redis-rb"], {"sub"}),
        "ioredis": ("ioredis (on 'message')", node + ["ioredis"], {"sub"}),
    }


SYSTEMS = _sys_table()
REACTIS = {"reactis-c", "reactis-py", "reactis-py-b", "reactis-rb"}
SLOW = {"rq", "rq-simple", "celery", "sidekiq", "bullmq", "reactis-py", "reactis-rb"}
# Around 1,000 messages a second or less (one call each, or draining): in
# --quick they get fewer messages, which show the same rates sooner.
VERY_SLOW = {"rq", "rq-simple", "celery"}


T_START = time.time()


def log(*a):
    print(*a, flush=True)


# ---------------------------------------------------------------- server

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Server:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="reactis-bench-")
        self.port = free_port()
        self.url = "redis://127.0.0.1:%d/0" % self.port
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--logfile", os.path.join(self.dir, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.dir)
        for _ in range(100):
            if self.cli("PING") == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def cli(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.port)] + [str(a) for a in args],
                           capture_output=True, text=True, timeout=120)
        return r.stdout.strip()

    def info(self, section, field):
        m = re.search(r"^%s:(\S+)" % field, self.cli("INFO", section), re.M)
        return m.group(1) if m else None

    def used_memory(self):
        return int(self.info("memory", "used_memory"))

    def reset(self):
        self.cli("FLUSHALL")
        self.cli("CONFIG", "SET", "notify-keyspace-events", "")
        self.cli("CONFIG", "SET", "client-output-buffer-limit", "normal 0 0 0 replica 256mb 64mb 60 pubsub 32mb 8mb 60")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- drivers

class Driver:
    """One driver process: READY, then RESULT {json}."""

    def __init__(self, system, op, url, **kw):
        cmd = list(SYSTEMS[system][1])
        if system == "reactis-c":
            cmd.append(op)
        else:
            cmd.append(op)
        cmd += ["--url", url]
        for k, v in kw.items():
            if v is None or v is False:
                continue
            cmd += ["--" + k.replace("_", "-"), str(v)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.path.join(ROOT, "bindings", "python") + os.pathsep + HERE
        env["RUBYLIB"] = os.path.join(ROOT, "bindings", "ruby", "lib")
        env["NODE_PATH"] = os.path.join(BENCH, "node_modules")
        if os.path.isdir(GEMS):
            env["GEM_PATH"] = GEMS + os.pathsep + env.get("GEM_PATH", "")
        self.system, self.op = system, op
        self.errf = tempfile.TemporaryFile()
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.errf, text=True, env=env, cwd=HERE,
                                  start_new_session=True)
        self.result = None

    def stderr(self):
        self.errf.seek(0)
        return self.errf.read().decode(errors="replace")[-2000:]

    def wait_ready(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.p.stdout.readline()
            if not line:
                break
            if line.strip() == "READY":
                return True
        self.kill()
        raise RuntimeError("%s %s: no READY. stderr: %s" % (self.system, self.op, self.stderr()))

    def go(self):
        self.p.stdin.write("GO\n")
        self.p.stdin.flush()

    def finish(self, timeout=600):
        """Waits for RESULT (and the exit); returns the dict."""
        import threading
        box = {}

        def reader():
            for line in self.p.stdout:
                if line.startswith("RESULT "):
                    box["r"] = json.loads(line[7:])
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError("%s %s: timed out after %ss" % (self.system, self.op, timeout))
        t.join(5)
        if "r" not in box:
            raise RuntimeError("%s %s: exit %s, no RESULT. stderr: %s" % (
                self.system, self.op, self.p.returncode, self.stderr()))
        self.result = box["r"]
        return self.result

    def terminate(self, timeout=40):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.p.wait()


def produce(srv, system, n, timeout=900, **kw):
    d = Driver(system, "produce", srv.url, n=n, **kw)
    d.wait_ready()
    return d.finish(timeout)


def read_log(path):
    """{index: (due_ms, recv_ms)} from a consumer log (first receipt), plus
    the number of duplicate receipts."""
    seen, dups = {}, 0
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) != 3:
                    continue
                i = int(parts[0])
                if i in seen:
                    dups += 1
                    continue
                seen[i] = (float(parts[1]), float(parts[2]))
    except FileNotFoundError:
        pass
    return seen, dups


def count_lines(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def wait_count(path, n, deadline, proc=None, idle_from=None, idle=None):
    """Waits until *path* has *n* lines (True), the consumer died, or
    *deadline* (False). With *idle_from* and *idle*: also stops (False) once
    it is past *idle_from* and nothing has arrived for *idle* seconds, so a
    peer that has stopped delivering does not hold the run to the deadline;
    what is missing is then reported as not received."""
    last_n, last_t = -1, time.time()
    while time.time() < deadline:
        got = count_lines(path)
        if got >= n:
            return True
        if proc is not None and proc.p.poll() is not None:
            return False
        now = time.time()
        if got != last_n:
            last_n, last_t = got, now
        elif idle_from is not None and now >= idle_from and now - max(last_t, idle_from - idle) >= idle:
            return False
        time.sleep(0.05)
    return False


def consume_start(srv, system, out, **kw):
    if os.path.exists(out):
        os.unlink(out)
    d = Driver(system, "consume", srv.url, out=out, **kw)
    d.wait_ready()
    return d


# ---------------------------------------------------------------- results

class Results:
    def __init__(self):
        self.rows = []      # dicts: case, metric, system, values, unit, better, note
        self.samples = {}   # (case, size, system) -> list of lateness ms (for plots)
        self.notes = []
        self.skipped = {}

    def add(self, case, metric, system, values, unit, better="higher", note=""):
        values = [v for v in values if v is not None]
        self.rows.append(dict(case=case, metric=metric, system=system, values=values,
                              unit=unit, better=better, note=note))
        if values:
            log("    %-14s %-40s median %s  (min %s, max %s, %d runs) %s [%.0f s]" % (
                system, metric, fmt(statistics.median(values)), fmt(min(values)),
                fmt(max(values)), len(values), note, time.time() - T_START))
        else:
            log("    %-14s %-40s n/a %s" % (system, metric, note))


def fmt(v):
    if v is None:
        return "n/a"
    if isinstance(v, float) and not v.is_integer():
        if abs(v) >= 100:
            return "{:,.0f}".format(v)
        if abs(v) >= 10:
            return "%.1f" % v
        return "%.2f" % v
    return "{:,}".format(int(v))


# ---------------------------------------------------------------- cases

class Ctx:
    def __init__(self, srv, res, systems, quick, tiny, runs):
        self.srv, self.res, self.systems = srv, res, systems
        self.quick, self.tiny, self.runs = quick, tiny, runs
        self.tmp = srv.dir

    def pick(self, wanted, op="produce"):
        return [s for s in wanted if s in self.systems and op in SYSTEMS[s][2]]

    def out(self, name):
        return os.path.join(self.tmp, name + ".log")

    def guard(self, system, what, fn):
        try:
            return fn()
        except Exception as e:  # a peer failing must not end the run
            msg = "%s: %s failed: %s" % (system, what, str(e)[:300])
            log("    !! " + msg)
            self.res.notes.append(msg)
            return None


QUEUES = ["reactis-c", "reactis-py", "reactis-py-b", "reactis-rb", "rq", "rq-simple", "celery",
          "sidekiq", "bullmq"]
BATCHABLE = {"reactis-c", "reactis-py", "reactis-py-b", "reactis-rb", "sidekiq", "bullmq",
             "keyspace", "rq", "rq-simple"}


def case1(c):
    """Schedule/enqueue throughput: one call per message (due in an hour), and batched."""
    log("\n== case 1: schedule/enqueue throughput")
    n1 = 200 if c.tiny else (5000 if c.quick else 10000)
    nb = 1000 if c.tiny else (20000 if c.quick else 100000)
    for s in c.pick(["reactis-c", "reactis-py", "reactis-rb", "rq", "celery", "sidekiq", "bullmq", "keyspace"]):
        n = min(n1, 5000) if s in SLOW else n1
        if s in VERY_SLOW:
            n = min(n, 2000 if c.quick else 3000)
        vals = []
        for _ in range(c.runs):
            c.srv.reset()
            r = c.guard(s, "schedule", lambda: produce(c.srv, s, n, delay=3600000))
            vals.append(r and r["rate"])
        c.res.add(1, "schedule, one call each (msg/s)", s, vals, "msg/s",
                  note="" if n == n1 else "(%d msgs)" % n)
        if s not in BATCHABLE:
            c.res.add(1, "schedule, batches of 1000 (msg/s)", s, [], "msg/s", note="(no batch API)")
            continue
        n = min(nb, 20000) if s in SLOW else nb
        vals = []
        note = ""
        for _ in range(c.runs):
            c.srv.reset()
            r = c.guard(s, "batch", lambda: produce(c.srv, s, n, delay=3600000, batch=1000))
            if s.startswith("rq"):
                # enqueue_many has no delay: enqueue_in calls share a pipeline.
                note = "(enqueue_in calls in one pipeline)"
            vals.append(r and r["rate"])
            if r and not r.get("batched", True):
                note = "(no batch API: one call each)"
            if r and r.get("interrupted"):
                c.res.notes.append("%s: schedule raised Reactis::Interrupted %d times without a signal (retried)" % (s, r["interrupted"]))
        if n != nb:
            note += " (%d msgs)" % n
        c.res.add(1, "schedule, batches of 1000 (msg/s)", s, vals, "msg/s", note=note.strip())


def fill_batch(s):
    """The batch size of s's fills: 1,000 where it has a batch API."""
    return 1000 if s in BATCHABLE else None


def fill_now(c, s, n):
    """n messages due now, batched where the system can."""
    return produce(c.srv, s, n, batch=fill_batch(s))


def case2(c):
    """Drain throughput: one worker process, no-op handler."""
    log("\n== case 2: drain throughput (one worker process, no-op handler)")
    big = 2000 if c.tiny else (20000 if c.quick else 100000)
    small = 1000 if c.tiny else (5000 if c.quick else 20000)
    # A system that has not drained by then has shown its rate: the rate is
    # taken from the first to the last receipt either way, and the note
    # says how many came.
    cap = 5 if c.quick else 8
    for s in c.pick(["reactis-c", "reactis-py", "reactis-py-b", "reactis-rb", "rq", "rq-simple",
                     "celery", "sidekiq", "bullmq"], "consume"):
        n = small if s in SLOW and s not in ("reactis-py", "reactis-rb") else big
        if c.quick and s in VERY_SLOW:
            n = 2000
        elif s == "celery":
            # Filled one call at a time (no batch API, ~1,600/s) and draining
            # ~900/s: within the cap it takes 6,000 at most.
            n = min(n, 6000)
        vals, notes = [], set()
        for _ in range(c.runs):
            c.srv.reset()

            def one():
                fill_now(c, s, n)
                out = c.out("drain-" + s)
                d = consume_start(c.srv, s, out)
                t_ready = time.time() * 1000
                ok = wait_count(out, n, time.time() + cap, d)
                d.terminate()
                seen, _ = read_log(out)
                if len(seen) < 2:
                    raise RuntimeError("received %d" % len(seen))
                recvs = sorted(v[1] for v in seen.values())
                if not ok:
                    notes.add("time cap %ds: %d of %d" % (cap, len(seen), n))
                return (len(seen) - 1) / ((recvs[-1] - recvs[0]) / 1000.0)
            vals.append(c.guard(s, "drain", one))
        note = ("(%d msgs)" % n) + (" " + "; ".join(sorted(notes)) if notes else "")
        c.res.add(2, "drain (msg/s)", s, vals, "msg/s", note=note)


# Seconds a consumer runs before the first message is due: Sidekiq's
# scheduled poller first waits up to 5 s after start (a random part, to
# spread the polls of processes started together; its 10 s INITIAL_WAIT is
# skipped, see rbdrive.rb); a worker in production has long been running, so
# the first due time is put after that (the messages are scheduled
# meanwhile).
WARMUP = {"sidekiq": 6}

# Seconds without a receipt, once the due window is over, after which a run
# stops waiting for the rest (reported as not received). Sidekiq polls its
# schedule every 2.5-7.5 s (5 s on average, with one process), so a pause of
# that length is normal there.
IDLE = {"sidekiq": 8.0}
IDLE_DEFAULT = 3.0

LEAD_RATE = {"reactis-c": 50000, "reactis-py": 30000, "reactis-py-b": 30000, "reactis-rb": 30000,
             "keyspace": 40000, "bullmq": 8000, "sidekiq": 8000, "rq": 1500, "rq-simple": 1500,
             "celery": 1500}


def first_due(s, n, t_up):
    """Epoch ms of the first due time for a consumer up since *t_up*:
    after the time its fill takes (LEAD_RATE) and after its warm-up."""
    lead = 1500 + int(1000 * n / LEAD_RATE.get(s, 5000))
    return int(max(time.time() * 1000 + lead, (t_up + WARMUP.get(s, 0)) * 1000))


def lateness_run(c, s, n, span, cap_after=10.0):
    """Consumer up; n messages due evenly over span ms, scheduled
    beforehand; returns (lateness list in ms, received, early, overran_s,
    stopped_idle, stderr tail of the consumer)."""
    c.srv.reset()
    out = c.out("late-" + s)
    d = consume_start(c.srv, s, out)
    start = first_due(s, n, time.time())
    batch = fill_batch(s)
    produce(c.srv, s, n, start=start, span=span, batch=batch)
    overran = max(0.0, time.time() - start / 1000.0)
    end = start / 1000.0 + span / 1000.0
    ok = wait_count(out, n, end + cap_after, d, idle_from=end, idle=IDLE.get(s, IDLE_DEFAULT))
    stopped_idle = not ok and time.time() < end + cap_after - 0.5
    d.terminate()
    seen, _ = read_log(out)
    late = [recv - due for due, recv in seen.values()]
    early = sum(1 for x in late if x < 0)
    return late, len(seen), early, overran, stopped_idle, (d.stderr() if len(seen) < n else "")


def pct(v, p):
    if not v:
        return None
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p / 100.0))]


def case3(c):
    log("\n== case 3: delayed delivery lateness (due evenly over %d s)" % (SPAN3_MS // 1000))
    sizes = [200, 1000] if c.tiny else ([2000] if c.quick else [2000, 100000])
    span = SPAN3_MS
    done = {}  # (messages, system) -> (size tag, rows) of runs already made
    for size in sizes:
        for s in c.pick(["reactis-c", "reactis-py-b", "reactis-rb", "rq", "celery", "sidekiq", "bullmq",
                         "keyspace"], "consume"):
            # The slow peers get 10,000 of the 100,000: filling takes them
            # 7-15 s, and they cannot deliver more than that in 10 s anyway.
            # RQ's default Worker (a fork per job, ~70 jobs/s here) gets
            # 2,000: it does not deliver even those in time, and filling and
            # stopping it with more only costs minutes.
            n = min(size, 10000) if s in SLOW and s not in ("reactis-py-b", "reactis-rb") else size
            if s == "rq":
                n = min(n, 500 if c.quick else 2000)
            tag = "%d msgs" % size
            if n != size and (n, s) in done:
                # The same runs as a row above (RQ: 2,000 in both sizes):
                # shown again under this size, said so, not run again.
                prev_tag, rows, prev_size = done[(n, s)]
                for metric, vals, unit, nt in rows:
                    if nt is not None:
                        nt = ("(%d msgs: the runs of the %s rows) %s" % (n, prev_tag, nt)).strip()
                    c.res.add(3, metric.replace(prev_tag, tag), s, vals, unit, "lower", nt or "")
                c.res.samples[(3, size, s)] = c.res.samples.get((3, prev_size, s), [])
                continue
            p50s, p99s, maxs, earlies, lost, allv = [], [], [], [], [], []
            notes = set()
            idled = 0
            for run_no in range(c.runs):
                r = c.guard(s, "lateness", lambda: lateness_run(c, s, n, span))
                if r is None:
                    continue
                late, got, early, overran, stopped_idle, err = r
                idled += stopped_idle
                if err.strip():
                    # Why a peer did not deliver, in its own words (the
                    # last lines of its log), for the notes.
                    tail = " | ".join(l.strip() for l in err.strip().splitlines()[-3:])
                    c.res.notes.append("%s, case 3, %d msgs, run %d: %d not received; its log ends: %s" % (
                        s, size, run_no + 1, n - got, tail[-400:]))
                if overran > 0.05:
                    notes.add("fill overran start by %.1fs" % overran)
                p50s.append(pct(late, 50))
                p99s.append(pct(late, 99))
                maxs.append(max(late) if late else None)
                earlies.append(early)
                lost.append(n - got)
                allv.extend(late)
            note = "" if n == size else "(%d msgs)" % n
            if any(lost):
                notes.add("not received within 10 s after the last due time: %s%s" % (
                    "/".join(map(str, lost)),
                    " (%d of %d runs stopped after %g s without a receipt)" % (
                        idled, c.runs, IDLE.get(s, IDLE_DEFAULT)) if idled else ""))
            note = (note + " " + "; ".join(sorted(notes))).strip()
            rows = [("lateness p50, %s (ms)" % tag, p50s, "ms", note),
                    ("lateness p99, %s (ms)" % tag, p99s, "ms", None),
                    ("lateness max, %s (ms)" % tag, maxs, "ms", None),
                    ("early deliveries, %s" % tag, earlies, "msgs", None)]
            for metric, vals, unit, nt in rows:
                c.res.add(3, metric, s, vals, unit, "lower", nt or "")
            done[(n, s)] = (tag, rows, size)
            c.res.samples[(3, size, s)] = allv


# Finishes the incremental rehashing of every hash table inside a value
# (hash, sorted set, set). Redis rehashes those one bucket per access and
# never in the background (serverCron rehashes only the keyspace itself), so
# right after a fill that crossed a power of two a big key still holds its
# old table as well (measured: 187 KB, 9 B per message, for reactis at
# 20,000). A queue in use is accessed all the time and soon rid of it; a
# lookup of a missing member per bucket does the same here, for every
# system alike, so that case 4 measures what stays.
SETTLE_LUA = """
local probe = {hash = 'HEXISTS', zset = 'ZSCORE', set = 'SISMEMBER'}
local size = {hash = 'HLEN', zset = 'ZCARD', set = 'SCARD'}
local cursor, touched = '0', 0
repeat
  local r = redis.call('SCAN', cursor, 'COUNT', 1000)
  cursor = r[1]
  for _, k in ipairs(r[2]) do
    local t = redis.call('TYPE', k)['ok']
    if probe[t] then
      local enc = redis.call('OBJECT', 'ENCODING', k)
      if enc == 'hashtable' or enc == 'skiplist' then
        for i = 1, redis.call(size[t], k) + 64 do redis.call(probe[t], k, 'reactis-bench-no-such-member') end
        touched = touched + 1
      end
    end
  end
until cursor == '0'
return touched
"""


def settled_memory(srv):
    """used_memory once no hash table inside a value is half rehashed."""
    time.sleep(0.3)  # the producer's connection is closed and freed
    srv.cli("EVAL", SETTLE_LUA, "0")
    return srv.used_memory()


def case4(c):
    log("\n== case 4: redis memory per waiting message (100-byte payload, due in an hour)")
    n_all = 1000 if c.tiny else (5000 if c.quick else 20000)
    for s in c.pick(["reactis-c", "rq", "celery", "sidekiq", "bullmq", "keyspace"]):
        # Celery fills one call at a time (~1,000/s): 5,000 show its
        # per-message cost as well (the rows are per message).
        n = min(n_all, 5000) if s == "celery" else n_all
        vals, first = [], []
        batch = fill_batch(s)
        for _ in range(c.runs):
            c.srv.reset()
            # Every system starts with an empty script cache, whatever ran
            # before it on this server.
            c.srv.cli("SCRIPT", "FLUSH", "SYNC")
            time.sleep(0.2)

            def one():
                # One message first, through the same driver: what a system
                # costs once (its scripts in the server's cache, its keys
                # and their headers) is reported apart and kept out of the
                # per-message figure. Then n more, 100-byte payloads each,
                # the system's own ids, everyone alike.
                empty = c.srv.used_memory()
                produce(c.srv, s, 1, delay=3600000)
                m0 = settled_memory(c.srv)
                produce(c.srv, s, n, delay=3600000, batch=batch)
                m1 = settled_memory(c.srv)
                first.append((m0 - empty) / 1024.0)
                return (m1 - m0) / n
            vals.append(c.guard(s, "memory", one))
        c.res.add(4, "bytes per waiting message", s, vals, "B", "lower", "(%d msgs)" % n)
        c.res.add(4, "first message, once (KB)", s, first, "KB", "lower")


# Case 3's due window (ms): 10 s as the case is defined; set in main().
SPAN3_MS = 10000


def case5(c):
    log("\n== case 5: loss while the consumer is stopped for 3 s")
    n = 300 if c.tiny else (500 if c.quick else 2000)
    # --quick: due over 4.5 s, stopped 1 s in (still for 3 s), and without
    # RQ and Sidekiq, whose restarts take seconds to deliver again.
    span, stop_at = (4500, 1.0) if c.quick else (6000, 1.5)
    wanted = ["reactis-c", "reactis-py", "rq", "celery", "sidekiq", "bullmq", "keyspace"]
    if c.quick:
        wanted = [s for s in wanted if s not in ("rq", "sidekiq")]
        c.res.notes.append("case 5 (--quick): due over 4.5 s, stopped 1 s in; RQ and Sidekiq not run")
    for s in c.pick(wanted, "consume"):
        lost_v, dup_v = [], []
        # RQ's default Worker (a fork per job) delivers ~70 jobs/s here:
        # 2,000 due over 6 s would measure that (most still queued 20 s
        # later, counted as lost) and take minutes, not what a stop loses.
        # It gets 500 (83/s over the window), which it can keep up with.
        n_s = min(n, 500) if s == "rq" else n
        for _ in range(c.runs):
            def one(n=n_s):
                c.srv.reset()
                out = c.out("loss-" + s)
                d = consume_start(c.srv, s, out)
                start = first_due(s, n, time.time())
                batch = fill_batch(s)
                produce(c.srv, s, n, start=start, span=span, batch=batch)
                time.sleep(max(0, start / 1000.0 + stop_at - time.time()))
                d.terminate()                       # stopped (SIGTERM, graceful) ...
                time.sleep(3.0)                     # ... for 3 s while messages fall due
                out2 = out + ".2"
                d2 = consume_start(c.srv, s, out2)  # then restarted
                # Up to 20 s after the last due time, or until nothing has
                # come for IDLE s once the due window is over and the
                # restarted consumer is warm (a restarted Sidekiq waits
                # up to 5 s before it first polls).
                end = start / 1000.0 + span / 1000.0
                idle_from = max(end, time.time() + WARMUP.get(s, 0))
                idle = IDLE.get(s, IDLE_DEFAULT)
                last, lastc = time.time(), -1
                while time.time() < end + 20:
                    got = len(read_log(out)[0].keys() | read_log(out2)[0].keys())
                    if got >= n:
                        break
                    now = time.time()
                    if got != lastc:
                        last, lastc = now, got
                    elif now >= idle_from and now - max(last, idle_from - idle) >= idle:
                        break
                    time.sleep(0.2)
                d2.terminate()
                a, da = read_log(out)
                b, db = read_log(out2)
                got = set(a) | set(b)
                return n - len(got), da + db + len(set(a) & set(b))
            r = c.guard(s, "loss", one)
            if r:
                lost_v.append(r[0])
                dup_v.append(r[1])
        c.res.add(5, "lost of %d (not received by 20 s after the last due time)" % n_s, s, lost_v, "msgs", "lower",
                  "" if n_s == n else "(%d, not %d: its throughput)" % (n_s, n))
        c.res.add(5, "delivered twice", s, dup_v, "msgs", "lower")


def case6(c):
    log("\n== case 6: timers among other keys with TTLs")
    others = 20000 if c.tiny else (50000 if c.quick else 200000)
    n = 200 if c.tiny else 2000
    wait = 5 if c.tiny else (10 if c.quick else 30)
    span = 5000
    for s in c.pick(["reactis-c", "keyspace"], "consume"):
        ontime, late, never = [], [], []
        for _ in range(c.runs):
            def one():
                c.srv.reset()
                # The other keys: TTLs of one to two hours, so they stay.
                c.srv.cli("EVAL", "for i=1,tonumber(ARGV[1]) do redis.call('SET','other:'..i,'v','EX',3600+i%3600) end",
                          "0", str(others))
                out = c.out("timers-" + s)
                d = consume_start(c.srv, s, out)
                start = int(time.time() * 1000) + 2000
                produce(c.srv, s, n, start=start, span=span, batch=1000)
                wait_count(out, n, start / 1000.0 + span / 1000.0 + wait, d)
                d.terminate()
                seen, _ = read_log(out)
                lat = [recv - due for due, recv in seen.values()]
                # "fired within 30 s": of its own due time
                ok = sum(1 for x in lat if x <= 100)
                lt = sum(1 for x in lat if 100 < x <= wait * 1000)
                return ok, lt, n - ok - lt
            r = c.guard(s, "timers", one)
            if r:
                ontime.append(r[0])
                late.append(r[1])
                never.append(r[2])
        c.res.add(6, "fired on time (<= 100 ms late) of %d" % n, s, ontime, "msgs")
        c.res.add(6, "fired late (> 100 ms, within %d s)" % wait, s, late, "msgs", "lower")
        c.res.add(6, "not fired within %d s" % wait, s, never, "msgs", "lower",
                  "(%d other keys with TTLs)" % others)


def case7(c):
    log("\n== case 7: pub/sub drain rate (16-byte messages buffered by the server, then read)")
    n = 20000 if c.tiny else (50000 if c.quick else 200000)
    # Runs go round the systems (run 1 of each, then run 2 of each, ...),
    # not all of one system's runs in a row: this machine's speed drifts by
    # up to 1.6x for seconds at a time (the same process, the same GC
    # counts, every figure slower, including its GC time), and a system
    # whose runs all fell in a slow spell would get a median from it alone.
    # A reader takes 0.1-0.8 s, so 5 runs each cost little.
    runs = c.runs if c.runs < 3 else max(c.runs, 5)
    systems = c.pick(["reactis-c", "reactis-py", "reactis-rb", "redis-py", "redis-rb", "ioredis"], "sub")
    vals = {s: [] for s in systems}
    for _ in range(runs):
        for s in systems:
            def one():
                c.srv.reset()
                c.srv.cli("CONFIG", "SET", "client-output-buffer-limit", "pubsub 0 0 0")
                d = Driver(s, "sub", c.srv.url, n=n, channel="bench")
                d.wait_ready()
                p = Driver("reactis-c", "pub", c.srv.url, n=n, channel="bench")
                r = p.finish(300)
                if r["delivered"] != n:
                    raise RuntimeError("published to %d" % r["delivered"])
                d.go()
                r = d.finish(300)
                if r["n"] != n:
                    raise RuntimeError("received %d of %d" % (r["n"], n))
                return r["rate"]
            vals[s].append(c.guard(s, "sub", one))
    for s in systems:
        c.res.add(7, "pub/sub drain (msg/s)", s, vals[s], "msg/s",
                  note="(%d msgs; %d runs, interleaved across systems)" % (n, runs))


def case8(c):
    log("\n== case 8: per-message cost vs waiting backlog (schedule one call each + fetch/ack)")
    marks = [1000, 10000] if c.tiny else ([10000, 100000] if c.quick else [10000, 100000, 1000000])
    k = 500 if c.tiny else 2000
    for s in c.pick(["reactis-c", "reactis-py-b", "sidekiq", "bullmq", "keyspace"] +
                    ([] if c.quick or c.tiny else ["rq-simple"])):
        for m in marks:
            if s in SLOW and m > 100000:
                c.res.add(8, "schedule cost at %s waiting (us/msg)" % fmt(m), s, [], "us", "lower",
                          "(skipped: filling 1,000,000 takes too long here)")
                continue
            sched, fetch = [], []

            def fill():
                c.srv.reset()
                batch = fill_batch(s)
                produce(c.srv, s, m, delay=7200000, batch=batch, timeout=1200)
            c.guard(s, "fill %d" % m, fill)
            for _ in range(c.runs):
                r = c.guard(s, "schedule", lambda: produce(c.srv, s, k, delay=3600000))
                sched.append(r and 1e6 / r["rate"])
                if s == "keyspace":
                    continue

                def fetch_one():
                    fill_now(c, s, k)
                    out = c.out("scale-" + s)
                    d = consume_start(c.srv, s, out)
                    wait_count(out, k, time.time() + 60, d)
                    d.terminate()
                    seen, _ = read_log(out)
                    recvs = sorted(v[1] for v in seen.values())
                    return 1000.0 * (recvs[-1] - recvs[0]) / (len(recvs) - 1)
                fetch.append(c.guard(s, "fetch", fetch_one))
            c.res.add(8, "schedule cost at %s waiting (us/msg)" % fmt(m), s, sched, "us", "lower")
            if s != "keyspace":
                c.res.add(8, "fetch+ack cost at %s waiting (us/msg)" % fmt(m), s, fetch, "us", "lower")


CASES = {1: case1, 2: case2, 3: case3, 4: case4, 5: case5, 6: case6, 7: case7, 8: case8}


# ---------------------------------------------------------------- machine, versions

def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:
        return ""


def machine():
    model = sh("lscpu | sed -n 's/^Model name: *//p' | head -1") or platform.processor()
    mem = sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
    return "%s cores (nproc), %s, %s RAM, %s" % (os.cpu_count(), model, mem, platform.platform())


def versions(systems):
    v = {"redis-server": sh("redis-server --version | sed 's/.*v=\\([^ ]*\\).*/\\1/'"),
         "cc": sh("cc --version | head -1"),
         "hiredis (C)": sh("pkg-config --modversion hiredis"),
         "python": platform.python_version()}
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "bindings", "python") + os.pathsep + HERE)
    for s in ("reactis-py", "rq", "celery", "redis-py"):
        if s in systems:
            out = subprocess.run([PY, os.path.join(HERE, "pydrive.py"), s, "version", "--url", "x"],
                                 capture_output=True, text=True, env=env).stdout
            try:
                v.update(json.loads(out))
            except ValueError:
                pass
    if any(s in systems for s in ("bullmq", "ioredis")):
        v["node"] = sh("node --version")
        for pkg in ("bullmq", "ioredis"):
            pj = os.path.join(BENCH, "node_modules", pkg, "package.json")
            if os.path.exists(pj):
                v[pkg] = json.load(open(pj))["version"]
    if any(s in systems for s in ("sidekiq", "redis-rb", "reactis-rb")):
        v["ruby"] = sh("ruby -e 'print RUBY_VERSION'")
        out = sh("cd %s && GEM_PATH=%s:$GEM_PATH RUBYLIB=%s ruby rbdrive.rb versions x --url x" % (
            HERE, GEMS, os.path.join(ROOT, "bindings", "ruby", "lib")))
        try:
            v.update(json.loads(out))
        except ValueError:
            pass
    return v


# ---------------------------------------------------------------- report

def ratio_text(rows, r):
    """reactis C (or the reactis row of the same language) / this peer."""
    if r["system"] in REACTIS or not r["values"]:
        return ""
    ref = next((x for x in rows if x["case"] == r["case"] and x["metric"] == r["metric"]
                and x["system"] == "reactis-c" and x["values"]), None)
    if ref is None:
        return ""
    a, b = statistics.median(ref["values"]), statistics.median(r["values"])
    if b == 0:
        return "∞" if a else ""
    q = a / b
    return "%.3g" % q if q < 0.1 else "%.2f" % q


SUB_LABELS = {"reactis-c": "reactis C (rx_sub_next_batch)", "reactis-py": "reactis Python (listen)",
              "reactis-rb": "reactis Ruby (each_message block)"}


def label(r):
    if r["case"] == 7 and r["system"] in SUB_LABELS:
        return SUB_LABELS[r["system"]]
    return SYSTEMS[r["system"]][0]


def markdown(res, meta):
    out = []
    out.append("# reactis benchmark results\n")
    out.append("Written by `bash bench/run.sh%s` on %s. Do not edit by hand: run it again.\n" % (
        meta["args"], meta["date"]))
    out.append("- machine: %s" % meta["machine"])
    out.append("- mode: %s" % meta["mode"])
    out.append("- runs per figure: %d; each cell is the median, with min–max over the runs" % meta["runs"])
    out.append("- versions: " + ", ".join("%s %s" % kv for kv in meta["versions"].items()))
    out.append("- one redis-server (no persistence) on a loopback port for everything; systems run one at a time")
    out.append("- ratio = reactis C / peer (for \"lower is better\" rows a ratio below 1 favours reactis)")
    if res.skipped:
        out.append("- not measured: " + "; ".join("%s (%s)" % kv for kv in res.skipped.items()))
    out.append("")
    cases = {1: "Schedule/enqueue throughput", 2: "Drain throughput, one worker process, no-op handler",
             3: "Delayed delivery lateness (receipt − due)", 4: "Redis memory per waiting message (100-byte payload)",
             5: "Loss: consumer stopped for 3 s while messages fall due", 6: "Timers among other keys with TTLs",
             7: "Pub/sub drain rate", 8: "Per-message cost vs waiting backlog"}
    for case in sorted({r["case"] for r in res.rows}):
        out.append("## %d. %s\n" % (case, cases[case]))
        out.append("| metric | system | median | min–max | ratio reactis C / peer | note |")
        out.append("| --- | --- | ---: | ---: | ---: | --- |")
        for r in [x for x in res.rows if x["case"] == case]:
            v = r["values"]
            med = fmt(statistics.median(v)) if v else "n/a"
            rng = "%s–%s" % (fmt(min(v)), fmt(max(v))) if v else ""
            out.append("| %s | %s | %s | %s | %s | %s |" % (
                r["metric"], label(r), med, rng, ratio_text(res.rows, r), r["note"]))
        out.append("")
    if res.notes:
        out.append("## Notes and failures\n")
        for n in res.notes:
            out.append("- " + n.replace("\n", " "))
        out.append("")
    return "\n".join(out)


def plots(res, outdir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not available: no plots")
        return []
    os.makedirs(outdir, exist_ok=True)
    made = []
    order = list(SYSTEMS)
    cmap = plt.get_cmap("tab20")
    color = {s: cmap(i % 20) for i, s in enumerate(order)}
    # Lateness distributions: one ECDF per system, symlog x.
    sizes = sorted({k[1] for k in res.samples})
    if sizes:
        fig, axes = plt.subplots(1, len(sizes), figsize=(7 * len(sizes), 5), squeeze=False)
        for ax, size in zip(axes[0], sizes):
            for (case, sz, s), v in sorted(res.samples.items()):
                if sz != size or not v:
                    continue
                v = sorted(v)
                ys = [(i + 1) / len(v) for i in range(len(v))]
                step = max(1, len(v) // 4000)
                ax.plot(v[::step], ys[::step], label="%s (n=%d)" % (s, len(v)), color=color[s],
                        lw=2.2 if s in REACTIS else 1.4)
            ax.set_xscale("symlog", linthresh=1)
            ax.set_xlabel("lateness, ms (receipt − due; symlog; < 0 = early)")
            ax.set_ylabel("fraction of messages")
            ax.set_title("Delayed delivery lateness, %d messages due over %d s" % (size, SPAN3_MS // 1000))
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8, loc="upper left")
        fig.tight_layout()
        p = os.path.join(outdir, "lateness.png")
        fig.savefig(p, dpi=110)
        plt.close(fig)
        made.append(p)
    # Throughput bars.
    groups = [(m, [r for r in res.rows if r["metric"] == m and r["values"]])
              for m in ("schedule, one call each (msg/s)", "schedule, batches of 1000 (msg/s)",
                        "drain (msg/s)", "pub/sub drain (msg/s)")]
    groups = [g for g in groups if g[1]]
    if groups:
        fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 5), squeeze=False)
        for ax, (m, rows) in zip(axes[0], groups):
            names = [r["system"] for r in rows]
            med = [statistics.median(r["values"]) for r in rows]
            lo = [md - min(r["values"]) for md, r in zip(med, rows)]
            hi = [max(r["values"]) - md for md, r in zip(med, rows)]
            colors = ["tab:blue" if n in REACTIS else "tab:gray" for n in names]
            ax.bar(range(len(names)), med, yerr=[lo, hi], color=colors, capsize=3)
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels(names, rotation=40, ha="right", fontsize=9)
            ax.set_yscale("log")
            ax.set_title(m, fontsize=10)
            ax.grid(True, axis="y", alpha=0.3)
            for i, v in enumerate(med):
                ax.text(i, v, fmt(v), ha="center", va="bottom", fontsize=7)
        fig.suptitle("Throughput (median, min–max bars; log scale; blue = reactis)")
        fig.tight_layout()
        p = os.path.join(outdir, "throughput.png")
        fig.savefig(p, dpi=110)
        plt.close(fig)
        made.append(p)
    # Cost vs backlog.
    rows8 = [r for r in res.rows if r["case"] == 8 and r["values"]]
    if rows8:
        fig, axes = plt.subplots(1, 2, figsize=(12, 5))
        for ax, kind in zip(axes, ("schedule", "fetch+ack")):
            for s in sorted({r["system"] for r in rows8}):
                pts = []
                for r in rows8:
                    if r["system"] == s and r["metric"].startswith(kind + " cost"):
                        m = int(re.search(r"at ([\d,]+) waiting", r["metric"]).group(1).replace(",", ""))
                        pts.append((m, statistics.median(r["values"])))
                if pts:
                    pts.sort()
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=s, color=color[s],
                            lw=2.2 if s in REACTIS else 1.4)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("messages already waiting")
            ax.set_ylabel("µs per message (median)")
            ax.set_title("%s cost vs backlog" % kind)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        p = os.path.join(outdir, "scale.png")
        fig.savefig(p, dpi=110)
        plt.close(fig)
        made.append(p)
    return made


# ---------------------------------------------------------------- main

def available(res, only_reactis):
    """Which systems can run here; the rest are noted as skipped."""
    ok = set()
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "bindings", "python") + os.pathsep + HERE,
               RUBYLIB=os.path.join(ROOT, "bindings", "ruby", "lib"),
               NODE_PATH=os.path.join(BENCH, "node_modules"),
               GEM_PATH=GEMS + os.pathsep + os.environ.get("GEM_PATH", ""))

    def check(s, cmd, why):
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=HERE)
        if r.returncode == 0:
            ok.add(s)
        else:
            res.skipped[s] = why

    if os.access(os.path.join(BUILD, "rxdrive"), os.X_OK):
        ok.add("reactis-c")
    else:
        res.skipped["reactis-c"] = "build-bench/rxdrive not built"
    check("reactis-py", [PY, "-c", "import reactis.cimpl"], "the Python binding does not import")
    if "reactis-py" in ok:
        ok.add("reactis-py-b")
    if shutil.which("ruby"):
        check("reactis-rb", ["ruby", "-e", "require 'reactis'; Reactis::Queue"], "the Ruby binding does not load")
    if only_reactis:
        return ok
    check("rq", [PY, "-c", "import rq, redis"], "RQ not installed (bench/.venv)")
    if "rq" in ok:
        ok.add("rq-simple")
    check("celery", [PY, "-c", "import celery"], "Celery not installed (bench/.venv)")
    check("keyspace", [PY, "-c", "import redis"], "redis-py not installed (bench/.venv)")
    if "keyspace" in ok:
        ok.add("redis-py")
    if shutil.which("node"):
        check("bullmq", ["node", "-e", "require('bullmq')"], "BullMQ not installed (bench/node_modules)")
        check("ioredis", ["node", "-e", "require('ioredis')"], "ioredis not installed (bench/node_modules)")
    else:
        res.skipped["bullmq"] = res.skipped["ioredis"] = "no node"
    if shutil.which("ruby"):
        check("redis-rb", ["ruby", "-e", "require 'redis'; require 'hiredis'"], "redis-rb/hiredis gems not installed")
        check("sidekiq", ["ruby", "-e", "require 'sidekiq'"], "Sidekiq not installed")
    else:
        res.skipped["redis-rb"] = res.skipped["sidekiq"] = "no ruby"
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer messages, 1 run per figure (about 5 min)")
    ap.add_argument("--tiny", action="store_true", help="a few hundred messages, 1 run (smoke test)")
    ap.add_argument("--case", type=int, action="append", help="run only this case (repeatable)")
    ap.add_argument("--runs", type=int, help="runs per figure (default 3; 1 with --quick/--tiny)")
    ap.add_argument("--only", help="comma-separated systems to run")
    ap.add_argument("--reactis-only", action="store_true", help="skip every peer")
    ap.add_argument("--results", default=os.path.join(BENCH, "RESULTS.md"))
    ap.add_argument("--plots", default=os.path.join(BENCH, "plots"))
    ap.add_argument("--args", default="")
    ap.add_argument("--replot", help="redraw the plots from a results.json and exit")
    a = ap.parse_args()
    if a.replot:
        res = Results()
        data = json.load(open(a.replot))
        res.rows = data["rows"]
        res.samples = {tuple(json.loads(k)): v for k, v in data["samples"].items()}
        for p in plots(res, a.plots):
            log("wrote " + p)
        return 0
    runs = a.runs or (1 if (a.quick or a.tiny) else 3)
    mode = "tiny (smoke test)" if a.tiny else ("--quick: fewer messages, %d run(s) per figure; "
                                              "figures are indicative only" % runs if a.quick else "full")
    res = Results()
    systems = available(res, a.reactis_only)
    if a.only:
        want = set(a.only.split(","))
        systems &= want
    t_start = time.time()
    log("reactis benchmark harness — %s" % mode)
    log("machine: %s" % machine())
    vers = versions(systems)
    log("versions: " + ", ".join("%s %s" % kv for kv in vers.items()))
    for s, why in sorted(res.skipped.items()):
        log("skipped: %s — %s" % (s, why))
    srv = Server()
    log("redis-server on %s (dir %s)" % (srv.url, srv.dir))
    global SPAN3_MS
    # --quick spreads case 3's messages over 5 s (the full run: 10 s, as the
    # case is defined) to fit its 5-minute budget; its header says "quick".
    SPAN3_MS = 3000 if a.tiny else (5000 if a.quick else 10000)
    ctx = Ctx(srv, res, systems, a.quick, a.tiny, runs)
    if "sidekiq" in systems and set(a.case or CASES) & {2, 3, 5, 8}:
        res.notes.append("sidekiq: poll_interval_average set to 5 s, what Sidekiq computes itself "
                         "for one process, which also skips its 10 s INITIAL_WAIT at start "
                         "(see bench/README.md)")
    took = {}
    try:
        for n in (a.case or sorted(CASES)):
            t0 = time.time()
            CASES[n](ctx)
            took[n] = time.time() - t0
            log("   (case %d took %.0f s; %.0f s since the start)" % (n, took[n], time.time() - t_start))
    except KeyboardInterrupt:
        log("interrupted: writing what was measured")
    finally:
        srv.stop()
    meta = dict(args=a.args, date=time.strftime("%Y-%m-%d %H:%M"), machine=machine(), mode=mode,
                runs=runs, versions=vers)
    md = markdown(res, meta)
    total = time.time() - t_start
    md += "\nTime per case: %s; total %.0f s (%.1f min, with setup and the report).\n" % (
        ", ".join("%d: %.0f s" % kv for kv in sorted(took.items())) or "none", total, total / 60)
    with open(a.results, "w") as f:
        f.write(md)
    os.makedirs(a.plots, exist_ok=True)
    with open(os.path.join(a.plots, "results.json"), "w") as f:
        thin = {json.dumps(list(k)): sorted(v)[::max(1, len(v) // 5000)] for k, v in res.samples.items()}
        json.dump(dict(meta=meta, rows=res.rows, samples=thin, notes=res.notes), f)
    made = plots(res, a.plots)
    log("\n" + md)
    log("wrote %s%s" % (a.results, "".join("\nwrote " + p for p in made)))
    failed = [n for n in res.notes if "failed" in n and any(n.startswith(s) for s in REACTIS)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
