"""Fixtures for the Python tests: real redis-server processes on free loopback
ports, each in its own temporary directory.

The server binary is RX_REDIS_SERVER or redis-server on PATH (as for the C
tests). The package under test is the in-place build in bindings/python
(`python setup.py build_ext --inplace`) when there is one, else whatever
`import reactis` finds (an installed or editable package).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator, List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
PY_DIR = ROOT / "bindings" / "python"

if list((PY_DIR / "reactis").glob("_cimpl*.so")) and not os.environ.get("REACTIS_TEST_INSTALLED"):
    sys.path.insert(0, str(PY_DIR))

import reactis  # noqa: E402

PACKAGE_PARENT = str(Path(reactis.__file__).resolve().parent.parent)


def redis_server_binary() -> str:
    path = os.environ.get("RX_REDIS_SERVER") or shutil.which("redis-server")
    if not path:
        pytest.skip("redis-server not found (set RX_REDIS_SERVER)")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------ a tiny RESP client

def _encode(args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf = sock, b""

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self) -> Any:
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ValueError("bad RESP: %r" % line)


def raw_command(port: int, *args: Any, password: Optional[str] = None, timeout: float = 5.0) -> Any:
    """One command over a plain socket, independent of reactis."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        r = _Reader(s)
        if password is not None:
            s.sendall(_encode(["AUTH", password]))
            r.read()
        s.sendall(_encode(list(args)))
        return r.read()


# ------------------------------------------------------------ servers

class RedisServer:
    """One redis-server process. `args` are extra command-line arguments."""

    def __init__(self, workdir: Path, args: List[str] = (), password: Optional[str] = None) -> None:
        self.workdir = workdir
        self.args = list(args)
        self.password = password
        self.port = 0
        self.tls_port = 0
        self.tls: Optional[dict] = None  # cert paths: serve TLS on tls_port too
        self.proc: Optional[subprocess.Popen] = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        auth = ":%s@" % self.password if self.password else ""
        return "redis://%s127.0.0.1:%d/0" % (auth, self.port)

    @property
    def tls_url(self) -> str:
        return "rediss://127.0.0.1:%d/0" % self.tls_port

    def start(self, port: Optional[int] = None) -> "RedisServer":
        binary = redis_server_binary()
        for attempt in range(5):
            self.port = port or self.port or free_port()
            cmd = [binary, "--port", str(self.port), "--bind", "127.0.0.1",
                   "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
                   "--logfile", str(self.workdir / "redis.log"), "--daemonize", "no"]
            if self.password:
                cmd += ["--requirepass", self.password]
            if self.tls:
                self.tls_port = self.tls_port or free_port()
                cmd += ["--tls-port", str(self.tls_port), "--tls-cert-file", self.tls["cert"],
                        "--tls-key-file", self.tls["key"], "--tls-ca-cert-file", self.tls["ca"],
                        "--tls-auth-clients", "no"]
            cmd += self.args
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._wait_ready():
                return self
            self.stop()
            if port:  # a fixed port (restart) that is not free yet: try again
                time.sleep(0.2)
            else:
                self.port = 0
        raise RuntimeError("redis-server did not start; see %s" % (self.workdir / "redis.log"))

    def _wait_ready(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                reply = raw_command(self.port, "PING", password=self.password, timeout=1.0)
                if reply == "PONG":
                    return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """Stops at once (SIGKILL): clients see a dead link, not a goodbye."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self, downtime: float = 0.0) -> None:
        port = self.port
        self.stop()
        if downtime:
            time.sleep(downtime)
        self.start(port=port)

    def command(self, *args: Any) -> Any:
        return raw_command(self.port, *args, password=self.password)


def make_certs(d: Path) -> dict:
    """A CA and a server certificate for DNS name "localhost" only (so that
    connecting to 127.0.0.1 fails the host name check unless told)."""
    openssl = shutil.which("openssl")
    if not openssl:
        pytest.skip("openssl not found")
    d.mkdir(parents=True, exist_ok=True)
    ca, ca_key = d / "ca.pem", d / "ca.key"
    cert, key, csr, ext = d / "server.pem", d / "server.key", d / "server.csr", d / "ext.cnf"

    def run(*args):
        subprocess.run([openssl, *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        "/CN=reactis test CA", "-keyout", str(ca_key), "-out", str(ca))
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", str(key), "-out", str(csr))
    ext.write_text("subjectAltName=DNS:localhost\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert))
    return {"ca": str(ca), "cert": str(cert), "key": str(key)}


@pytest.fixture(scope="session")
def tls_server(tmp_path_factory) -> Iterator[RedisServer]:
    """A server that speaks TLS on tls_port (and plain TCP on port)."""
    d = tmp_path_factory.mktemp("redis-tls")
    s = RedisServer(d / "data")
    s.tls = make_certs(d / "certs")
    s.start()
    yield s
    s.stop()


@pytest.fixture
def redis_factory(tmp_path_factory) -> Iterator:
    """Starts servers with given arguments; stops them all at the end."""
    servers: List[RedisServer] = []

    def make(*args: str, password: Optional[str] = None) -> RedisServer:
        s = RedisServer(tmp_path_factory.mktemp("redis"), list(args), password=password)
        servers.append(s)
        return s.start()

    yield make
    for s in servers:
        s.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    """One server shared by the tests that do not change its configuration."""
    s = RedisServer(tmp_path_factory.mktemp("redis-shared")).start()
    yield s
    s.stop()


@pytest.fixture
def url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def client(url: str) -> Iterator["reactis.Client"]:
    with reactis.Client(url) as c:
        yield c


_counter = [0]


@pytest.fixture
def channel(request) -> bytes:
    """A channel name of its own for each test, so tests never cross-talk."""
    _counter[0] += 1
    return ("t.%s.%d.%d" % (request.node.name, os.getpid(), _counter[0])).encode()


def child_env() -> dict:
    """Environment for child Python processes that import the same reactis."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PACKAGE_PARENT + os.pathsep + env.get("PYTHONPATH", "")
    return env
