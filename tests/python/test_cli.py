"""python -m reactis: the commands, flags, output and exit codes of the C
`reactis` tool, plus `worker`.

Most cases call reactis.cli.main() in this process (fast); the ones that
read stdin, block or handle signals run `python -m reactis` as a child."""

import io
import json
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import reactis
from reactis import cli
from conftest import child_env


def run(url, *args, stdin=None):
    """(exit code, stdout text, stderr text) of main() in this process."""
    out, err = io.BytesIO(), io.StringIO()
    rc = cli.main(["--url", url, *args], stdout=out, stderr=err)
    return rc, out.getvalue().decode("utf-8", "replace"), err.getvalue()


def run_json(url, *args):
    rc, out, err = run(url, "--json", *args)
    return rc, [json.loads(line) for line in out.splitlines() if line.strip()], err


def child(url, *args, **kw):
    return subprocess.Popen([sys.executable, "-m", "reactis", "--url", url, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(), **kw)


@pytest.fixture
def qname(request):
    return "cli.%s.%d" % (request.node.name, time.monotonic_ns())


# ------------------------------------------------------------ usage and globals

def test_usage_errors_exit_2(url):
    assert run(url)[0] == 2
    rc, _, err = run(url, "bogus")
    assert rc == 2 and "unknown command 'bogus'" in err and "usage:" in err
    assert run(url, "schedule", "q")[0] == 2                        # PAYLOAD missing
    assert run(url, "schedule", "q", "p", "--delay", "soon")[0] == 2
    assert run(url, "schedule", "q", "p", "--nope")[0] == 2
    assert run(url, "reschedule", "q", "id")[0] == 2                # --delay or --at
    assert run(url, "dead", "requeue", "q")[0] == 2                 # TOKEN or --all
    assert run(url, "dead", "list", "q", "--count", "0")[0] == 2
    assert run(url, "dead", "frobnicate", "q")[0] == 2
    assert run(url, "tail", "bad{name}")[0] == 2
    assert run(url, "worker", "mod:fn")[0] == 2                     # --queue missing
    assert run(url, "worker", "no_such_module_xyz:fn", "--queue", "q")[0] == 2
    assert run(url, "worker", "json:no_such_fn", "--queue", "q")[0] == 2
    rc, out, _ = run(url, "schedule", "--help")
    assert rc == 0 and out.startswith("usage: python -m reactis schedule")
    rc, out, _ = run(url, "--help")
    assert rc == 0 and "worker MODULE:FUNCTION" in out


def test_version_and_global_options_anywhere(url, qname):
    rc, out, _ = run(url, "version")
    assert rc == 0 and out.strip() == "reactis %s" % reactis.__version__
    # --json and --url may come after the command, as in the C tool.
    out, err = io.BytesIO(), io.StringIO()
    rc = cli.main(["schedule", qname, "x", "--json", "--url=" + url], stdout=out, stderr=err)
    assert rc == 0 and json.loads(out.getvalue())["outcome"] == "added"


def test_connection_error_exits_3():
    rc, out, err = run_json("redis://127.0.0.1:1/0", "stats", "q")
    assert rc == 3 and out[0]["error"] == "ECONNECT" and "could not connect" in err


def test_refused_exits_4(url, qname, client):
    client.command("SET", "rx:{%s}:z" % qname, "not a sorted set")
    rc, _, err = run(url, "schedule", qname, "x")
    assert rc == 4 and "holds a string" in err
    client.command("DEL", "rx:{%s}:z" % qname)
    assert run(url, "stats", "bad{name}")[0] == 4  # the core refuses the name


def test_redis_url_from_environment(url, qname):
    env = dict(child_env(), REDIS_URL=url)
    p = subprocess.run([sys.executable, "-m", "reactis", "--json", "schedule", qname, "x"],
                       capture_output=True, env=env, timeout=20)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["queue"] == qname


# ------------------------------------------------------------ schedule and friends

def test_schedule_outcomes_and_exit_codes(url, qname):
    rc, out, _ = run(url, "schedule", qname, "hello", "--id", "AAA", "--delay", "15m")
    assert rc == 0 and out.startswith("AAA added, due ")
    rc, out, _ = run(url, "schedule", qname, "again", "--id", "AAA", "--delay", "1h")
    assert rc == 1 and "already waiting, kept" in out
    rc, lines, _ = run_json(url, "schedule", qname, "new", "--id", "AAA", "--delay", "2s",
                            "--replace")
    assert rc == 0 and lines[0]["outcome"] == "replaced" and lines[0]["id"] == "AAA"
    assert abs(lines[0]["due_ms"] - (time.time() * 1000 + 2000)) < 1500
    at = int(time.time() * 1000) + 3600_000
    rc, lines, _ = run_json(url, "schedule", qname, "at", "--at", str(at))
    assert rc == 0 and abs(lines[0]["due_ms"] - at) <= 1 and len(lines[0]["id"]) == 12
    with reactis.Queue(qname, url) as q:
        assert q.stats().scheduled == 2


def test_schedule_reads_stdin(url, qname):
    p = child(url, "--json", "schedule", qname, "-", "--id", "bin", stdin=subprocess.PIPE)
    out, err = p.communicate(b"\x00\xff binary", timeout=20)
    assert p.returncode == 0, err
    with reactis.Queue(qname, url) as q:
        (job,) = q.fetch(timeout=5)
        assert (job.id, job.payload) == (b"bin", b"\x00\xff binary")
        job.ack()


def test_cancel_reschedule_run_now(url, qname):
    run(url, "schedule", qname, "x", "--id", "K", "--delay", "1h")
    rc, out, _ = run(url, "reschedule", qname, "K", "--delay", "2h")
    assert (rc, out.strip()) == (0, "K: rescheduled")
    rc, lines, _ = run_json(url, "run-now", qname, "K")
    assert rc == 0 and lines == [{"queue": qname, "id": "K", "was_waiting": True}]
    with reactis.Queue(qname, url) as q:
        (job,) = q.fetch(timeout=5)
        job.ack()
    rc, out, _ = run(url, "cancel", qname, "K")
    assert rc == 1 and "not waiting" in out
    run(url, "schedule", qname, "x", "--id", "K2", "--delay", "1h")
    assert run(url, "cancel", qname, "K2")[:2] == (0, "K2: cancelled\n")
    assert run_json(url, "cancel", qname, "K2")[1][0]["was_waiting"] is False


def test_stats_one_and_all(url, qname):
    run(url, "schedule", qname, "x", "--delay", "1h")
    rc, lines, _ = run_json(url, "stats", qname)
    assert rc == 0 and lines[0]["queue"] == qname and lines[0]["scheduled"] == 1
    assert set(lines[0]) == {"queue", "scheduled", "ready", "in_flight", "dead", "lag_ms",
                             "consumers", "next_due_ms", "now_ms", "acked", "failures",
                             "crashes", "dead_total"}
    rc, lines, _ = run_json(url, "stats")  # every queue of the shared server
    assert qname in [x.get("queue") for x in lines]
    rc, out, _ = run(url, "stats", qname)
    assert rc == 0 and out.startswith(qname + "\n  scheduled 1  ready 0")


def test_dead_letters(url, qname):
    with reactis.Queue(qname, url, max_attempts=1) as q:
        q.schedule(b"\xff\x00", id="bin")
        q.schedule("text", id="txt")
        jobs = q.fetch(max=10, timeout=5)
        while len(jobs) < 2:
            jobs += q.fetch(max=10, timeout=5)
        for j in jobs:
            j.fail("bad " + j.id.decode())
    rc, lines, _ = run_json(url, "dead", "list", qname)
    assert rc == 0 and [x["id"] for x in lines] == ["bin", "txt"]
    assert lines[0]["payload_base64"] == "/wA=" and lines[1]["payload"] == "text"
    assert lines[1]["error"] == "bad txt" and lines[1]["attempts"] == 1
    rc, out, _ = run(url, "dead", "list", qname, "--count", "1")
    assert rc == 0 and "id=bin" in out and "payload: \\xff\\x00" in out and "id=txt" not in out
    rc, out, _ = run(url, "dead", "list", qname, "--after", lines[0]["token"])
    assert "id=txt" in out and "id=bin" not in out
    assert run(url, "dead", "requeue", qname, "1-1")[0] == 1
    rc, out, _ = run(url, "dead", "requeue", qname, lines[0]["token"])
    assert (rc, out.strip()) == (0, "1 dead letter requeued")
    rc, lines2, _ = run_json(url, "dead", "purge", qname, "--all")
    assert rc == 0 and lines2 == [{"queue": qname, "purged": 1}]
    assert run(url, "dead", "list", qname)[1].strip() == "no dead letters"
    with reactis.Queue(qname, url) as q:
        (job,) = q.fetch(timeout=5)
        assert job.id == b"bin" and job.attempt == 1
        job.ack()


# ------------------------------------------------------------ tail and events

def _read_json_line(proc, timeout=10.0):
    box = []
    t = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    t.start()
    t.join(timeout)
    assert box and box[0], "no output from the child"
    return json.loads(box[0])


def test_tail_prints_deliveries(url, qname):
    # Make the stream exist, so tail starts after its newest entry.
    with reactis.Queue(qname, url) as q:
        q.schedule(b"old")
        q.fetch(timeout=5)[0].ack()
        p = child(url, "--json", "tail", qname, "--count", "1", "--timeout", "10000")
        try:
            time.sleep(0.5)
            q.schedule("héllo", id="T1")
            (job,) = q.fetch(timeout=5)
            job.ack()
            line = _read_json_line(p)
            assert (line["queue"], line["id"], line["payload"], line["attempt"]) == \
                (qname, "T1", "héllo", 1)
            assert p.wait(timeout=10) == 0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_tail_stops_on_sigterm(url, qname):
    p = child(url, "tail", qname)
    time.sleep(0.5)
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=5) == 0
    assert time.monotonic() - t0 < 2.0


def test_events_parses_notifications(redis_factory):
    server = redis_factory()
    p = child(server.url, "--json", "events", "--enable", "Ex", "--pattern",
              "__keyevent@0__:expired", "--channel", "plain", "--count", "2",
              "--timeout", "10000")
    try:
        with reactis.Client(server.url) as c:
            deadline = time.monotonic() + 10
            while c.command("PUBSUB", "NUMPAT") < 1 or c.command("PUBSUB", "NUMSUB", "plain")[1] < 1:
                assert time.monotonic() < deadline and p.poll() is None, p.stderr.read()
                time.sleep(0.05)
            c.publish("plain", b"\xfe")
            first = _read_json_line(p)
            assert first == {"channel": "plain", "message_base64": "/g=="}
            c.command("SET", "session:1", "x", "PX", 20)
            second = _read_json_line(p)
            assert second == {"channel": "__keyevent@0__:expired", "space": "keyevent", "db": 0,
                              "event": "expired", "key": "session:1"}
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


# ------------------------------------------------------------ worker

HANDLERS = '''
import os, time
def ok(job):
    with open(os.environ["OUT"], "a") as f:
        f.write(job.payload.decode() + "\\n")
class Jobs:
    @staticmethod
    def upper(job):
        with open(os.environ["OUT"], "a") as f:
            f.write(job.payload.decode().upper() + "\\n")
'''


def test_worker_burst_runs_handler_from_cwd(url, qname, tmp_path):
    (tmp_path / "myhandlers.py").write_text(textwrap.dedent(HANDLERS))
    out = tmp_path / "out.txt"
    with reactis.Queue(qname, url) as q:
        q.schedule_many([b"one", b"two", b"three"])
        q.schedule(b"later", delay=3600)
    env = dict(child_env(), OUT=str(out))
    p = subprocess.run([sys.executable, "-m", "reactis", "--url", url, "worker", "myhandlers:ok",
                        "--queue", qname, "--burst", "--concurrency", "2"],
                       cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert sorted(out.read_text().split()) == ["one", "three", "two"]
    assert "worker stopped after 3 job(s)" in p.stderr
    with reactis.Queue(qname, url) as q:
        st = q.stats()
        assert (st.acked, st.in_flight, st.scheduled) == (3, 0, 1)
        q.run_now("nope")
    # MODULE:Class.method, --max-jobs.
    with reactis.Queue(qname, url) as q:
        q.schedule_many([b"a", b"b"])
    p = subprocess.run([sys.executable, "-m", "reactis", "--url", url, "worker",
                        "myhandlers:Jobs.upper", "--queue", qname, "--max-jobs", "1",
                        "--log-level", "warning"],
                       cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert out.read_text().split()[3:] in (["A"], ["B"])
    assert "worker stopped" not in p.stderr  # --log-level warning
