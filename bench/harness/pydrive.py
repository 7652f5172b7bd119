"""Python drivers for the benchmark harness (bench/run.sh).

    python pydrive.py SYSTEM OP --url URL [options]

SYSTEM: reactis-py, reactis-py-b (fetch 100, acks sent with the next fetch), rq, rq-simple
(SimpleWorker), celery, keyspace (SET ... PX + PSUBSCRIBE expired, redis-py),
redis-py (pub/sub only). OP: produce, consume, sub.

Protocol (shared with rxdrive.c, nodedrive.js, rbdrive.rb): "READY" on stdout
once set up; "RESULT {json}" at the end; a consumer appends one line
"index due_ms recv_ms" per message to --out and runs until SIGTERM.
Payloads are "index:due_ms:" padded to --payload bytes, so every consumer
can measure lateness without trusting the system's own metadata.
"""

import argparse
import datetime as dt
import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def now_ms():
    return time.time() * 1000.0


def payload(i, due, size):
    p = "%d:%d:" % (i, due)
    return p + "x" * max(0, size - len(p))


def due_of(a, i):
    """Due epoch ms of message i, or 0 for 'a relative delay'."""
    if a.start:
        return a.start + int(i * a.span / a.n)
    return 0


def ready():
    sys.stdout.write("READY\n")
    sys.stdout.flush()


def result(**kw):
    sys.stdout.write("RESULT " + json.dumps(kw) + "\n")
    sys.stdout.flush()


class Out:
    """The per-message log of a consumer."""

    def __init__(self, path):
        self.f = open(path, "a", buffering=1 << 16)

    def line(self, data, recv=None, due_ms=None):
        if isinstance(data, bytes):
            data = data.decode()
        i, due, _ = data.split(":", 2)
        if due == "0" and due_ms:
            due = str(due_ms)
        self.f.write("%s %s %.3f\n" % (i, due, recv if recv is not None else now_ms()))

    def flush(self):
        self.f.flush()


def stop_on_term(fn):
    signal.signal(signal.SIGTERM, lambda *_: fn())
    signal.signal(signal.SIGINT, lambda *_: fn())


def timed_loop(a, one, many=None):
    """Produce a.n messages: one call each, or batches of a.batch."""
    ready()
    t0 = time.perf_counter()
    if a.batch and many:
        for s in range(0, a.n, a.batch):
            many(range(s, min(a.n, s + a.batch)))
    else:
        for i in range(a.n):
            one(i)
    sec = time.perf_counter() - t0
    result(n=a.n, seconds=sec, rate=a.n / sec, batched=bool(a.batch and many))


# ------------------------------------------------------------------ reactis

def reactis_produce(a):
    import reactis
    q = reactis.Queue(a.queue, url=a.url)
    q.stats()  # connect before the clock starts

    def kw(i):
        due = due_of(a, i)
        if due:
            return dict(payload=payload(i, due, a.payload).encode(), at=due / 1000.0)
        return dict(payload=payload(i, 0, a.payload).encode(), delay=a.delay / 1000.0)

    def one(i):
        k = kw(i)
        q.schedule(k.pop("payload"), **k)

    def many(r):
        q.schedule_many([kw(i) for i in r])

    timed_loop(a, one, many)
    q.close()


def reactis_consume(a, batched):
    import reactis
    out = Out(a.out)
    q = reactis.Queue(a.queue, url=a.url)
    q.stats()
    stop_on_term(q.wakeup)
    ready()
    count = 0
    if batched:
        running = [True]
        stop_on_term(lambda: (running.__setitem__(0, False), q.wakeup()))
        jobs = []
        while running[0]:
            # The previous batch's acks go with this fetch (one round trip).
            jobs = q.fetch(100, timeout=1.0, ack=jobs)
            if not jobs:
                continue
            recv = now_ms()
            for j in jobs:
                out.line(j.payload, recv, j.due_ms)
            count += len(jobs)
            out.flush()
        if jobs:
            q.ack_many(jobs)
    else:
        # The documented default: jobs() picks its batch, the with block acks.
        for job in q.jobs():
            with job:
                out.line(job.payload, None, job.due_ms)
                out.flush()
                count += 1
    out.flush()
    result(count=count)
    q.close()


def reactis_sub(a):
    import reactis
    s = reactis.Subscriber(a.url, health_check_interval=0)
    s.subscribe(a.channel)
    ready()
    sys.stdin.readline()
    # The idiomatic loop, as redis-py's row uses pubsub().listen(): every
    # message is buffered already, so listen() ends by count (the harness's
    # finish() timeout covers a reader that would never get them all).
    got = 0
    t0 = time.perf_counter()
    for _msg in s.listen():
        got += 1
        if got >= a.n:
            break
    sec = time.perf_counter() - t0
    result(n=got, seconds=sec, rate=got / sec, path="listen")


# ------------------------------------------------------------------ RQ

def rq_produce(a):
    import redis
    from rq import Queue
    import tasks_py
    r = redis.Redis.from_url(a.url)
    r.ping()
    q = Queue(a.queue, connection=r)

    def enqueue(i, pipeline=None):
        due = due_of(a, i)
        if due:
            q.enqueue_at(dt.datetime.fromtimestamp(due / 1000.0, dt.timezone.utc),
                         tasks_py.handle, payload(i, due, a.payload), pipeline=pipeline)
        elif a.delay > 0:
            q.enqueue_in(dt.timedelta(milliseconds=a.delay), tasks_py.handle,
                         payload(i, 0, a.payload), pipeline=pipeline)
        else:
            q.enqueue(tasks_py.handle, payload(i, now_ms(), a.payload), pipeline=pipeline)

    def many(rng):
        # RQ's batches: enqueue_many takes a pipeline but has no delay, so
        # due-now jobs go through it; delayed ones are enqueue_at /
        # enqueue_in calls sharing one pipeline (their pipeline= argument),
        # sent with one execute().
        with r.pipeline() as pipe:
            if a.start or a.delay > 0:
                for i in rng:
                    enqueue(i, pipe)
            else:
                q.enqueue_many([Queue.prepare_data(tasks_py.handle, (payload(i, now_ms(), a.payload),))
                                for i in rng], pipeline=pipe)
            pipe.execute()

    timed_loop(a, enqueue, many)


def rq_consume(a, simple):
    import redis
    from rq import Queue, SimpleWorker, Worker
    os.environ["BENCH_OUT"] = a.out
    open(a.out, "a").close()
    r = redis.Redis.from_url(a.url)
    q = Queue(a.queue, connection=r)
    cls = SimpleWorker if simple else Worker
    w = cls([q], connection=r)
    ready()
    import logging
    logging.getLogger("rq.worker").setLevel(logging.WARNING)
    w.work(with_scheduler=True, logging_level="WARNING")
    result(count=-1)


# ------------------------------------------------------------------ Celery

def celery_produce(a):
    from tasks_celery import make_app
    app, handle = make_app(a.url, a.queue)
    with app.producer_or_acquire() as prod:  # connect before the clock starts
        prod.connection.ensure_connection()

    def opts(i):
        due = due_of(a, i)
        if due:
            return payload(i, due, a.payload), dict(
                eta=dt.datetime.fromtimestamp(due / 1000.0, dt.timezone.utc))
        if a.delay > 0:
            return payload(i, 0, a.payload), dict(countdown=a.delay / 1000.0)
        return payload(i, now_ms(), a.payload), {}

    def one(i):
        p, o = opts(i)
        handle.apply_async((p,), queue=a.queue, **o)

    timed_loop(a, one, None)  # Celery has no batch enqueue for independent tasks


def celery_consume(a):
    os.environ["BENCH_OUT"] = a.out
    open(a.out, "a").close()
    from celery import signals
    from tasks_celery import make_app
    app, handle = make_app(a.url, a.queue)
    # READY once the worker consumes, not before it starts: its start-up
    # (imports, connection, consumer set-up: seconds on a busy machine)
    # must not count as lateness, nor overlap the due window.
    # Celery replaces sys.stdout with a logger: write to the real one.
    signals.worker_ready.connect(lambda **_: os.write(1, b"READY\n"), weak=False)
    app.worker_main(["worker", "-P", "solo", "-Q", a.queue, "--without-gossip",
                     "--without-mingle", "--without-heartbeat", "-l", "WARNING"])
    result(count=-1)


# ------------------------------------------------------------------ keyspace recipe

def ks_produce(a):
    import redis
    r = redis.Redis.from_url(a.url)
    r.ping()
    base = now_ms()

    def cmd(pipe_or_r, i):
        due = due_of(a, i)
        if due:
            px = max(1, int(due - now_ms()))
        else:
            px = max(1, int(a.delay))
            due = int(base + px)
        pipe_or_r.set("ks:%d:%d" % (i, due), payload(i, due, a.payload), px=px)

    def one(i):
        cmd(r, i)

    def many(rng):
        with r.pipeline(transaction=False) as p:
            for i in rng:
                cmd(p, i)
            p.execute()

    timed_loop(a, one, many)


def ks_consume(a):
    import redis
    out = Out(a.out)
    r = redis.Redis.from_url(a.url)
    # The recipe: turn expired events on (keeping other flags), subscribe.
    flags = r.config_get("notify-keyspace-events").get("notify-keyspace-events", "")
    want = set(flags) | {"E", "x"}
    r.config_set("notify-keyspace-events", "".join(sorted(want)))
    p = r.pubsub(ignore_subscribe_messages=True)
    p.psubscribe("__keyevent@*__:expired")
    p.get_message(timeout=1.0)
    running = [True]
    stop_on_term(lambda: running.__setitem__(0, False))
    ready()
    count = 0
    while running[0]:
        m = p.get_message(timeout=0.2)
        if not m or m["type"] != "pmessage":
            continue
        key = m["data"].decode()
        if key.startswith("ks:"):
            out.line(key[3:] + ":")
            out.flush()
            count += 1
    out.flush()
    result(count=count)


def redispy_sub(a):
    import redis
    r = redis.Redis.from_url(a.url)
    p = r.pubsub(ignore_subscribe_messages=True)
    p.subscribe(a.channel)
    p.get_message(timeout=1.0)
    ready()
    sys.stdin.readline()
    got = 0
    t0 = time.perf_counter()
    for m in p.listen():
        got += 1
        if got >= a.n:
            break
    sec = time.perf_counter() - t0
    result(n=got, seconds=sec, rate=got / sec)


def version(system):
    import importlib.metadata as md
    names = {"rq": ["rq", "redis"], "rq-simple": ["rq", "redis"], "celery": ["celery", "kombu", "redis"],
             "keyspace": ["redis", "hiredis"], "redis-py": ["redis", "hiredis"]}
    out = {}
    for n in names.get(system, []):
        out[n] = md.version(n)
    if system.startswith("reactis"):
        import reactis
        out["reactis"] = getattr(reactis, "__version__", "?")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("system")
    ap.add_argument("op")
    ap.add_argument("--url", required=True)
    ap.add_argument("--queue", default="bench")
    ap.add_argument("--channel", default="bench")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--span", type=int, default=0)
    ap.add_argument("--delay", type=int, default=0)
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--payload", type=int, default=100)
    ap.add_argument("--out", default="/dev/null")
    a = ap.parse_args()
    s, op = a.system, a.op
    if op == "version":
        print(json.dumps(version(s)))
        return
    table = {
        ("reactis-py", "produce"): reactis_produce,
        ("reactis-py-b", "produce"): reactis_produce,
        ("reactis-py", "consume"): lambda a: reactis_consume(a, False),
        ("reactis-py-b", "consume"): lambda a: reactis_consume(a, True),
        ("reactis-py", "sub"): reactis_sub,
        ("rq", "produce"): rq_produce,
        ("rq-simple", "produce"): rq_produce,
        ("rq", "consume"): lambda a: rq_consume(a, False),
        ("rq-simple", "consume"): lambda a: rq_consume(a, True),
        ("celery", "produce"): celery_produce,
        ("celery", "consume"): celery_consume,
        ("keyspace", "produce"): ks_produce,
        ("keyspace", "consume"): ks_consume,
        ("redis-py", "sub"): redispy_sub,
    }
    fn = table.get((s, op))
    if fn is None:
        sys.exit("pydrive: %s does not support %s" % (s, op))
    fn(a)


if __name__ == "__main__":
    main()
