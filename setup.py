"""Builds the Python package `reactis` and its one extension, reactis._cimpl.

The extension is made of
  * the SWIG wrapper generated from bindings/reactis.i (+ bindings/python.i),
    which also yields the pure-Python shim reactis/cimpl.py;
  * every core/src/*.c, compiled with the core's own flags;
  * rx_lua.c, the queue's Lua scripts as C strings (what cmake/embed_lua.cmake
    does for the CMake build, done here in Python);
  * hiredis, linked statically where libhiredis.a exists, and OpenSSL.

Only PyInit__cimpl is exported (a linker version script): hiredis and the
core's symbols stay private to the extension, so another copy of hiredis in
the process (another extension, a Ruby gem in an embedded interpreter) can
neither interpose on ours nor be interposed on.

Sdists carry the generated wrapper in bindings/python/generated/, so
installing from an sdist needs no SWIG. Environment knobs:
  SWIG=/path/to/swig        the SWIG to run (default: swig on PATH)
  REACTIS_HIREDIS_STATIC=0  link libhiredis.so instead of libhiredis.a
  REACTIS_CFLAGS="..."      extra flags for the core (e.g. -fsanitize=address)
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent
PY_DIR = "bindings/python"
GENERATED = Path(PY_DIR) / "generated"  # in sdists: reactis_wrap.c, cimpl.py
EXT_NAME = "reactis._cimpl"


def rel(p):
    """p relative to the source root, as setuptools likes its paths."""
    return os.path.relpath(str(p), str(ROOT))


def read_version():
    text = (ROOT / "core/include/reactis/reactis.h").read_text()
    return re.search(r'#define RX_VERSION_STRING "([^"]+)"', text).group(1)


def pkg_config(*args, default=""):
    try:
        out = subprocess.run(["pkg-config", *args], check=True, capture_output=True,
                             text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return default
    return out.strip()


def write_if_changed(path, text):
    path = Path(path)
    if path.exists() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def embed_lua(lua_dir, out):
    """Writes every lua_dir/NAME.lua as `const char rx__lua_NAME[]` (NUL
    terminated) and `const size_t rx__lua_NAME_len`, exactly as
    cmake/embed_lua.cmake does."""
    parts = ["/* Generated from core/lua/NAME.lua by setup.py (as cmake/embed_lua.cmake"
             " does). Do not edit. */\n",
             "#include <stddef.h>\n"]
    for script in sorted(Path(lua_dir).glob("*.lua")):
        name = script.name.split(".")[0]  # CMake's NAME_WE
        data = script.read_bytes()
        body = "".join("0x%02x," % b for b in data)
        parts.append("const char rx__lua_%s[] = {%s0x00};\n" % (name, body))
        parts.append("const size_t rx__lua_%s_len = %d;\n" % (name, len(data)))
    write_if_changed(out, "".join(parts))


def find_swig():
    swig = os.environ.get("SWIG") or "swig"
    return shutil.which(swig)


def interface_files():
    return sorted((ROOT / "bindings").glob("*.i"))


def run_swig(outdir):
    """Generates reactis_wrap.c and cimpl.py into outdir (only when the
    interface files are newer). Returns (wrap_c, cimpl_py)."""
    outdir = Path(outdir)
    wrap_c, cimpl_py = outdir / "reactis_wrap.c", outdir / "cimpl.py"
    inputs = interface_files() + sorted((ROOT / "core/include/reactis").glob("*.h"))
    if wrap_c.exists() and cimpl_py.exists():
        newest = max(p.stat().st_mtime for p in inputs)
        if wrap_c.stat().st_mtime >= newest and cimpl_py.stat().st_mtime >= newest:
            return wrap_c, cimpl_py
    swig = find_swig()
    if not swig:
        sys.exit("reactis: SWIG 4 is needed to build from a git checkout "
                 "(apt-get install swig), or install from an sdist")
    outdir.mkdir(parents=True, exist_ok=True)
    cmd = [swig, "-python", "-Wall", "-I" + str(ROOT / "bindings"),
           "-I" + str(ROOT / "core/include"), "-outdir", str(outdir),
           "-o", str(wrap_c), str(ROOT / "bindings/reactis.i")]
    print(" ".join(shlex.quote(c) for c in cmd))
    subprocess.run(cmd, check=True)
    return wrap_c, cimpl_py


class BuildExt(build_ext):
    """Builds reactis._cimpl: SWIG (or the sdist's pregenerated wrapper), the
    embedded Lua, the core with its own flags, a private hiredis."""

    def build_extension(self, ext):
        if ext.name != EXT_NAME:
            return super().build_extension(ext)
        tmp = Path(self.build_temp)

        if (ROOT / GENERATED / "reactis_wrap.c").exists():
            wrap_c, cimpl_py = ROOT / GENERATED / "reactis_wrap.c", ROOT / GENERATED / "cimpl.py"
        else:
            wrap_c, cimpl_py = run_swig(tmp / "swig")

        lua_c = tmp / "rx_lua.c"
        embed_lua(ROOT / "core/lua", lua_c)

        hiredis_cflags = shlex.split(pkg_config("--cflags", "hiredis"))
        hiredis_inc = [f[2:] for f in hiredis_cflags if f.startswith("-I")]
        core_args = ["-std=c11", "-fvisibility=hidden", "-Wall", "-Wextra",
                     "-Wno-unused-parameter", "-pthread"]
        core_args += [f for f in hiredis_cflags if not f.startswith("-I")]
        core_args += shlex.split(os.environ.get("REACTIS_CFLAGS", ""))
        sources = [rel(p) for p in sorted((ROOT / "core/src").glob("*.c"))]
        objects = self.compiler.compile(
            sources + [rel(lua_c)], output_dir=str(tmp / "core"),
            macros=[("_POSIX_C_SOURCE", "200809L"), ("_DEFAULT_SOURCE", None)],
            include_dirs=[rel(ROOT / "core/include"), rel(ROOT / "core/src")] + hiredis_inc,
            debug=self.debug, extra_postargs=core_args)

        link_objects = list(objects)
        libraries = ["ssl", "crypto", "m", "pthread"]
        static = None
        if os.environ.get("REACTIS_HIREDIS_STATIC", "1") != "0":
            static = self._find_static("libhiredis.a")
        if static:
            link_objects.append(static)
        else:
            print("reactis: libhiredis.a not found, linking libhiredis.so")
            libraries.insert(0, "hiredis")

        version_script = tmp / "cimpl.map"
        write_if_changed(version_script, "{\n  global: PyInit__cimpl;\n  local: *;\n};\n")

        ext.sources = [rel(wrap_c)]
        ext.include_dirs = [rel(ROOT / "core/include")] + hiredis_inc
        ext.extra_objects = link_objects
        ext.libraries = libraries
        ext.extra_compile_args = ["-fvisibility=hidden", "-Wno-unused-parameter"]
        ext.extra_link_args = ["-pthread", "-Wl,--exclude-libs,ALL",
                               "-Wl,--version-script=" + str(version_script)]
        ext.extra_link_args += shlex.split(os.environ.get("REACTIS_LDFLAGS", ""))
        # Relink when anything that went into the objects changed.
        ext.depends = [rel(p) for p in interface_files()] + sources + [
            rel(p) for p in list((ROOT / "core").rglob("*.h")) + list((ROOT / "core/lua").glob("*.lua"))]
        super().build_extension(ext)

        # The generated shim goes next to the extension: into build_lib for
        # wheels, into the source package for --inplace/editable builds.
        dest = Path(self.get_ext_fullpath(ext.name)).parent / "cimpl.py"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cimpl_py, dest)

    def _find_static(self, name):
        """libNAME.a from pkg-config's library dirs, else wherever the
        compiler would find it (Debian's hiredis.pc names /usr/lib, while
        the library is in the multiarch directory)."""
        dirs = [pkg_config("--variable=libdir", "hiredis")]
        dirs += [f[2:] for f in shlex.split(pkg_config("--libs", "hiredis")) if f.startswith("-L")]
        for d in dirs:
            if d and (Path(d) / name).exists():
                return str(Path(d) / name)
        try:
            out = subprocess.run([self.compiler.compiler_so[0], "-print-file-name=" + name],
                                 check=True, capture_output=True, text=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError, AttributeError, IndexError):
            return None
        return out if os.path.isabs(out) and os.path.exists(out) else None

    def _shim_paths(self):
        """(built cimpl.py, its in-place twin in the source package)."""
        build_py = self.get_finalized_command("build_py")
        regular = Path(self.build_lib) / "reactis" / "cimpl.py"
        inplace = Path(build_py.get_package_dir("reactis")) / "cimpl.py"
        return str(regular), str(inplace)

    def copy_extensions_to_source(self):
        # --inplace and editable installs: the shim goes with the extension.
        super().copy_extensions_to_source()
        regular, inplace = self._shim_paths()
        self.copy_file(regular, inplace, level=self.verbose)

    def _get_output_mapping(self):
        yield from super()._get_output_mapping()
        if self.inplace:
            regular, inplace = self._shim_paths()
            yield regular, inplace

    def get_outputs(self):
        outs = super().get_outputs()
        return outs + [str(Path(self.get_ext_fullpath(EXT_NAME)).parent / "cimpl.py")]


class BuildPy(build_py):
    """Runs build_ext first, so the generated reactis/cimpl.py is part of
    every build (a fresh `pip install .` would otherwise miss it)."""

    def run(self):
        self.run_command("build_ext")
        super().run()

    def find_package_modules(self, package, package_dir):
        # A cimpl.py left in the source tree by an --inplace build is never
        # copied: build_ext writes the one that matches the extension.
        mods = super().find_package_modules(package, package_dir)
        return [m for m in mods if not (m[0] == "reactis" and m[1] == "cimpl")]


class SDist(sdist):
    """Ships the SWIG output, so installing the sdist needs no SWIG."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        out = Path(base_dir) / GENERATED
        if (ROOT / GENERATED / "reactis_wrap.c").exists():  # an sdist of an sdist
            out.mkdir(parents=True, exist_ok=True)
            for name in ("reactis_wrap.c", "cimpl.py"):
                shutil.copyfile(ROOT / GENERATED / name, out / name)
        else:
            run_swig(out)


setup(
    name="reactis",
    version=read_version(),
    description="Dependable Redis pub/sub, keyspace notifications and a delayed queue",
    long_description=(ROOT / "README.md").read_text() if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.8",
    package_dir={"": PY_DIR},
    packages=["reactis"],
    package_data={"reactis": ["py.typed", "cimpl.pyi"]},
    ext_modules=[Extension(EXT_NAME, sources=["bindings/reactis.i"])],
    cmdclass={"build_ext": BuildExt, "build_py": BuildPy, "sdist": SDist},
    zip_safe=False,
    options={"build": {"build_base": "build-py"}},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: C",
        "Operating System :: POSIX",
        "Topic :: Database",
    ],
)
