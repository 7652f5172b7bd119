"""The timer, template and cache examples run as documented (short ttls)."""

import queue
import signal
import subprocess
import sys
import threading
import time

from conftest import ROOT, child_env

EXAMPLES = ROOT / "examples/python"


class Child:
    """A running example; its output lines are read in a thread, so a
    silent child cannot hang the test."""

    def __init__(self, *args, stdin=False, redis_url=None):
        env = child_env()
        if redis_url:
            env["REDIS_URL"] = redis_url
        self.proc = subprocess.Popen([sys.executable, *map(str, args)], cwd=str(EXAMPLES),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     text=True, env=env)
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, text, timeout=10.0):
        """Waits for a line containing text; returns it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError("no line with %r; got %r" % (text, self.seen))

    def drain(self, wait=0.0):
        time.sleep(wait)
        out = []
        while True:
            try:
                out.append(self.lines.get_nowait())
            except queue.Empty:
                self.seen += out
                return out

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def test_heartbeat_reports_devices_that_die(redis_factory):
    url = redis_factory().url
    common = ["--url", url, "--timers", "hb", "--ttl", "0.6"]
    watcher = Child(EXAMPLES / "heartbeat.py", *common, "watch")
    alive = Child(EXAMPLES / "heartbeat.py", *common, "device", "100001", "--every", "0.1")
    dying = Child(EXAMPLES / "heartbeat.py", *common, "device", "100002", "--every", "0.1",
                  "--beats", "5")
    children = [watcher, alive, dying]
    try:
        watcher.expect("watching hb")
        alive.expect("device 100001 online")
        line = watcher.expect("device 100002 offline", timeout=10)
        assert line == 'device 100002 offline, last payload ' + line.split("payload ", 1)[1]
        assert '"seq": 5' in line
        # The watcher goes away; meanwhile a device dies; a new watcher
        # still reports it.
        assert watcher.stop() == 0
        late = Child(EXAMPLES / "heartbeat.py", *common, "device", "100003", "--every", "0.1",
                     "--beats", "3")
        children.append(late)
        late.expect("stops beating")
        time.sleep(1.0)  # its deadline passes with no watcher running
        watcher2 = Child(EXAMPLES / "heartbeat.py", *common, "watch")
        children.append(watcher2)
        watcher2.expect("device 100003 offline", timeout=10)
        # The device that keeps beating is never reported.
        out = watcher2.drain(wait=1.5)
        assert not any("100001" in l for l in watcher.seen + watcher2.seen + out)
        assert alive.stop() == 0
        watcher2.expect("device 100001 offline", timeout=10)
        reports = [l for l in watcher.seen + watcher2.seen if "offline" in l]
        # Each device that stopped is reported. Delivery is at-least-once, so
        # a report may repeat (a firing given back when SIGTERM lands between
        # the handler and its ack; on a loaded machine a heartbeat late by
        # more than the ttl is, rightly, a missed deadline): allow one.
        assert {l.split()[1] for l in reports} == {"100001", "100002", "100003"}
        assert 3 <= len(reports) <= 4, reports
    finally:
        for c in children:
            c.stop(signal.SIGKILL)


def test_chat_routes_rooms(redis_factory):
    url = redis_factory().url
    listener = Child(EXAMPLES / "chat.py", "--url", url, "listen")
    try:
        listener.expect("listening on chat:*")
        for room, user, text in [("lobby", "alice", "hello"), ("dev:ops", "bob", "deploy?")]:
            p = subprocess.run([sys.executable, str(EXAMPLES / "chat.py"), "--url", url, "say",
                                room, user, text], capture_output=True, text=True,
                               env=child_env(), timeout=30)
            assert p.returncode == 0 and "sent to 1 listener(s)" in p.stdout, p.stderr
        assert listener.expect("[lobby]") == "[lobby] alice: hello"
        assert listener.expect("[dev:ops]") == "[dev:ops] bob: deploy?"
        assert listener.stop() == 0
    finally:
        listener.stop(signal.SIGKILL)


def test_cache_invalidation_across_two_processes(redis_factory):
    server = redis_factory()
    server.command("SET", "product:7", "v1")
    # The example reads REDIS_URL.
    a = Child(EXAMPLES / "cache_invalidation.py", "A", stdin=True, redis_url=server.url)
    b = Child(EXAMPLES / "cache_invalidation.py", "B", stdin=True, redis_url=server.url)
    try:
        a.expect("A: ready")
        b.expect("B: ready")
        a.send("get 7")
        assert a.expect("product 7") == "product 7 = v1 (from redis)"
        b.send("get 7")
        assert b.expect("product 7") == "product 7 = v1 (from redis)"
        b.send("get 7")
        assert b.expect("product 7") == "product 7 = v1 (cached)"
        a.send("set 7 v2")
        assert a.expect("product 7 set") == "product 7 set, 2 process(es) told"
        assert b.expect("invalidated") == "B: invalidated product 7"
        b.send("get 7")
        assert b.expect("product 7") == "product 7 = v2 (from redis)"
        a.send("get 7")
        assert a.expect("product 7") == "product 7 = v2 (cached)"
        assert not any("invalidated" in l for l in a.drain(0.3) + a.seen)
    finally:
        a.stop(signal.SIGKILL)
        b.stop(signal.SIGKILL)

