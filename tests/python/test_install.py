"""Packaging: `pip install .` into a fresh venv, and an sdist that installs
without SWIG. Slow-ish (each builds the extension), but part of the suite:
a build that only works in the developer's tree is a broken build.

pip builds in an isolated environment and fetches setuptools for it; with
REACTIS_TEST_NO_BUILD_ISOLATION=1 the venv sees this Python's setuptools
instead (for machines without a package index)."""

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow

ROUND_TRIP = r"""
import sys, reactis
assert "site-packages" in reactis.__file__, reactis.__file__
url = sys.argv[1]
with reactis.Subscriber(url) as sub, reactis.Client(url) as pub:
    sub.subscribe(b"install.\x00")
    pub.publish(b"install.\x00", b"\x00\xffok")
    msg = sub.get_message(timeout=5)
    assert msg.data == b"\x00\xffok", msg
print("round trip ok", reactis.__version__, reactis.cimpl.__file__)
"""

IGNORE = shutil.ignore_patterns(".git", "build*", "dist", "oom-*", "__pycache__", "*.so",
                                "*.o", "*.egg-info", "generated", "cimpl.py", ".pytest_cache",
                                "tests", "bench", "examples")


def copy_source(dst: Path) -> Path:
    """The tree as a fresh checkout has it (no build products)."""
    shutil.copytree(ROOT, dst, ignore=IGNORE)
    return dst


def make_venv(path: Path) -> Path:
    args = [sys.executable, "-m", "venv"]
    if os.environ.get("REACTIS_TEST_NO_BUILD_ISOLATION"):
        args.append("--system-site-packages")
    subprocess.run(args + [str(path)], check=True)
    return path / "bin" / "python"


def pip_install(python: Path, target: str, env=None) -> None:
    cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    if os.environ.get("REACTIS_TEST_NO_BUILD_ISOLATION"):
        cmd.append("--no-build-isolation")
    proc = subprocess.run(cmd + [target], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def exported_symbols(so: str):
    out = subprocess.run(["nm", "-D", "--defined-only", so], capture_output=True, text=True,
                         check=True).stdout
    return [line.split()[-1] for line in out.splitlines() if line.strip()]


def round_trip(python: Path, url: str, cwd: Path) -> str:
    proc = subprocess.run([str(python), "-c", ROUND_TRIP, url], capture_output=True, text=True,
                          cwd=str(cwd), timeout=60, env={"PATH": os.environ.get("PATH", "")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "round trip ok" in proc.stdout
    # The command-line tool and the worker ship with the package.
    cli = subprocess.run([str(python), "-m", "reactis", "--url", url, "--json", "stats",
                          "install.q"], capture_output=True, text=True, cwd=str(cwd), timeout=60,
                         env={"PATH": os.environ.get("PATH", "")})
    assert cli.returncode == 0 and '"queue":"install.q"' in cli.stdout, cli.stderr
    return proc.stdout.split()[-1]  # the path of the installed cimpl.py


def test_pip_install_into_fresh_venv(tmp_path, redis_server):
    src = copy_source(tmp_path / "src")
    python = make_venv(tmp_path / "venv")
    pip_install(python, str(src))
    cimpl_py = round_trip(python, redis_server.url, tmp_path)
    sos = list(Path(cimpl_py).parent.glob("_cimpl*.so"))
    assert len(sos) == 1
    if shutil.which("nm"):
        # hiredis (and the core) stay private to the extension.
        assert exported_symbols(str(sos[0])) == ["PyInit__cimpl"]


def test_sdist_installs_without_swig(tmp_path, redis_server):
    src = copy_source(tmp_path / "src")
    dist = tmp_path / "dist"
    proc = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(dist)],
                          cwd=str(src), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (tarball,) = dist.glob("reactis-*.tar.gz")
    with tarfile.open(tarball) as tf:
        names = tf.getnames()
    for needed in ("bindings/python/generated/reactis_wrap.c",
                   "bindings/python/generated/cimpl.py", "bindings/reactis.i",
                   "core/include/reactis/reactis.h", "bindings/python/reactis/py.typed",
                   "bindings/python/reactis/__main__.py", "bindings/python/reactis/worker.py"):
        assert any(n.endswith(needed) for n in names), needed
    assert not any(n.endswith(".so") for n in names)

    python = make_venv(tmp_path / "venv")
    env = dict(os.environ, SWIG=str(tmp_path / "no-swig-here"))
    pip_install(python, str(tarball), env=env)
    round_trip(python, redis_server.url, tmp_path)
