"""Small conversions shared by the wrapper modules (private)."""

from __future__ import annotations

import os
from typing import Any, Mapping, Union

from . import cimpl

BytesLike = Union[bytes, bytearray, memoryview, str]

#: Longest single wait inside the C core, in milliseconds. Between slices the
#: interpreter runs signal handlers that arrived on another thread.
SLICE_MS = 200


#: The server when no URL is given and $REDIS_URL is not set.
DEFAULT_URL = "redis://localhost:6379/0"


def default_url() -> str:
    """$REDIS_URL when set (and not empty), else redis://localhost:6379/0."""
    return os.environ.get("REDIS_URL") or DEFAULT_URL


def check_url(url: Any) -> str:
    """url itself, or default_url() for None."""
    if url is None:
        return default_url()
    if not isinstance(url, str):
        raise TypeError("url must be a str, not %s" % type(url).__name__)
    return url


def to_bytes(value: Any, what: str = "value") -> BytesLike:
    """Bytes-like values and str (sent as UTF-8) pass unchanged; the C
    typemaps read them without copying."""
    if isinstance(value, (bytes, bytearray, memoryview, str)):
        return value
    raise TypeError("%s must be bytes or str, not %s" % (what, type(value).__name__))


def encode_arg(value: Any) -> BytesLike:
    """A command argument: bytes and str as they are, int and float as their
    decimal text (as redis-py does). bool and None are refused, since
    neither has one obvious encoding."""
    if isinstance(value, (bytes, bytearray, memoryview, str)):
        return value
    if isinstance(value, bool) or value is None:
        raise TypeError("command arguments must be bytes, str, int or float, not %r"
                        % (value,))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    raise TypeError("command arguments must be bytes, str, int or float, not %s"
                    % type(value).__name__)


def option_text(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("%s must not be negative" % name)
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    raise TypeError("option %s: expected str, number or bool, not %s"
                    % (name, type(value).__name__))


def apply_options(handle: Any, options: Mapping[str, Any]) -> None:
    """Sets each option (None means "keep the default") through the core,
    which knows the names: an unknown one raises URLError."""
    for name, value in options.items():
        if value is None:
            continue
        handle.set_option(name, option_text(name, value))


def interrupted(rc: int, what: str) -> Exception:
    from .errors import Interrupted

    return Interrupted("%s: %s" % (what, cimpl.strerror(rc)), rc, cimpl.errname(rc))


def settled_call(handle: Any, lock: Any, method: str, args: Any) -> Any:
    """Calls handle.method(*args) under lock, again (up to 20 times) while
    it returns RX_EINTR or RX_WOKEN: for calls that do not wait, the core
    returns those only before the command went out, so a repeat is safe.
    Between tries Python runs any pending signal handler, which may raise
    (KeyboardInterrupt). Raises Interrupted when it never gets through."""
    rc: Any = None
    with lock:
        for _ in range(20):
            result = getattr(handle, method)(*args)
            rc = result[0] if isinstance(result, (list, tuple)) else result
            if rc != cimpl.EINTR and rc != cimpl.WOKEN:
                return result
    raise interrupted(rc, method)
