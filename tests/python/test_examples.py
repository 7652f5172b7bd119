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
