"""The examples run as documented."""

import signal
import subprocess
import sys
import time

import reactis
from conftest import ROOT, child_env


def test_listener_prints_expired_keys(redis_factory):
    server = redis_factory()
    proc = subprocess.Popen([sys.executable, str(ROOT / "examples/python/listener.py"), server.url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env())
    try:
        deadline = time.monotonic() + 10
        # Wait until it listens (it logs that on stderr).
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if "listening on" in line or not line:
                break
        assert proc.poll() is None, proc.stderr.read()
        with reactis.Client(server.url) as c:
            c.command("SET", "session:42", "x", "PX", 50)
        line = proc.stdout.readline()
        assert line.strip() == "expired db=0 key=b'session:42'"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


EXAMPLES = ROOT / "examples/python"


def _run_producer(url, seller=1.0, pudo=2.0):
    p = subprocess.run([sys.executable, str(EXAMPLES / "producer.py"), "--url", url,
                        "--seller-delay", str(seller), "--pudo-delay", str(pudo)],
                       capture_output=True, text=True, env=child_env(), timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


def _start_worker(url, module_runner):
    if module_runner:  # the Procfile line
        cmd = [sys.executable, "-m", "reactis", "--url", url, "worker", "worker:handle",
               "--queue", "sms"]
    else:
        cmd = [sys.executable, str(EXAMPLES / "worker.py"), "--url", url]
    return subprocess.Popen(cmd, cwd=str(EXAMPLES), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=child_env())


class _Output:
    """A child's output lines, read in a thread (a silent child cannot hang
    the test)."""

    def __init__(self, proc):
        import queue as _q
        import threading

        self.proc, self.lines, self._box, self._empty = proc, [], _q.Queue(), _q.Empty
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self._box.put(line)
        self._box.put(None)

    def until(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not predicate(self.lines):
            try:
                line = self._box.get(timeout=max(0.01, deadline - time.monotonic()))
            except self._empty:
                line = None
            if line is None:
                raise AssertionError("did not see the expected output: %r" % self.lines)
            self.lines.append(line)
        return self.lines

    def stop(self):
        """SIGTERM; the exit code must be 0. Returns all the output."""
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=10) == 0, self.lines
        while True:
            line = self._box.get(timeout=5)
            if line is None:
                return self.lines
            self.lines.append(line)


def _received(lines):
    return [ln.split("Received. ", 1)[1].strip() for ln in lines if "Received. " in ln]


def test_producer_and_worker_offline_then_back(redis_factory):
    """The worker is stopped before the messages fall due and started after
    both are due: both are still delivered, in due order."""
    server = redis_factory()
    worker = _Output(_start_worker(server.url, module_runner=True))
    worker.until(lambda ls: ls and "worker started" in ls[-1])
    worker.stop()  # offline from here on

    out = _run_producer(server.url, 1.0, 2.0)
    assert "Scheduled. channel: SELLER, c_key: AAA, ETA: " in out
    assert "Scheduled. channel: PUDO_OPERATOR, c_key: BBB, ETA: " in out
    # Running it again schedules nothing twice: the correlation keys are ids.
    assert "Already scheduled. channel: SELLER, c_key: AAA" in _run_producer(server.url, 1, 2)
    time.sleep(2.3)  # both are due now, with no worker running
    with reactis.Queue("sms", server.url) as q:
        assert q.stats().acked == 0

    worker = _Output(_start_worker(server.url, module_runner=False))
    worker.until(lambda ls: len(_received(ls)) == 2)
    assert _received(worker.stop()) == ["channel: SELLER, c_key: AAA",
                                        "channel: PUDO_OPERATOR, c_key: BBB"]
    with reactis.Queue("sms", server.url) as q:
        st = q.stats()
        assert (st.acked, st.in_flight, st.scheduled, st.ready) == (2, 0, 0, 0)


def test_worker_receives_when_due(redis_factory):
    server = redis_factory()
    worker = _Output(_start_worker(server.url, module_runner=True))
    worker.until(lambda ls: ls and "worker started" in ls[-1])
    t0 = time.monotonic()
    _run_producer(server.url, 0.5, 1.0)
    worker.until(lambda ls: len(_received(ls)) == 1)
    assert 0.4 <= time.monotonic() - t0
    worker.until(lambda ls: len(_received(ls)) == 2)
    assert 0.9 <= time.monotonic() - t0 < 5
    assert _received(worker.stop()) == ["channel: SELLER, c_key: AAA",
                                        "channel: PUDO_OPERATOR, c_key: BBB"]


def test_procfile_names_the_module_runner():
    text = (EXAMPLES / "Procfile").read_text()
    assert "worker: python -m reactis worker worker:handle --queue sms" in text
