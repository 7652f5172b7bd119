"""Key and channel name templates ("user:{user_id}:notifications").

A template is compiled once by the C core and then matches names (giving the
captures), formats names from values, and yields the glob pattern for
PSUBSCRIBE or SCAN::

    t = reactis.Template("user:{user_id}:notifications")
    t.match(b"user:42:notifications")   # {"user_id": b"42"}
    t.match(b"user:42:settings")        # None
    t.format(user_id=42)                # b"user:42:notifications"
    t.glob                              # b"user:*:notifications"

Syntax: literal bytes and ``{name}`` placeholders (``[A-Za-z0-9_]``, not
starting with a digit); ``{{`` and ``}}`` are literal braces, so a hash tag
is written ``"rx:{{{queue}}}:ready"``. Two placeholders may not touch, and a
name may appear once. Every placeholder matches one or more bytes; when a
literal after a placeholder occurs more than once, the placeholder takes the
shortest span that lets the whole name match (``"{a}:{b}"`` on ``"x:y:z"``
gives a = ``b"x"``, b = ``b"y:z"``). Names are binary: captures are bytes.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Union

from . import cimpl
from ._util import BytesLike, to_bytes

__all__ = ["Template"]


def _value_bytes(name: str, value: Any) -> BytesLike:
    if isinstance(value, (bytes, bytearray, memoryview, str)):
        return value
    if isinstance(value, bool) or value is None:
        raise TypeError("template value %s must be bytes, str or int, not %r" % (name, value))
    if isinstance(value, int):
        return str(value)
    raise TypeError("template value %s must be bytes, str or int, not %s"
                    % (name, type(value).__name__))


class Template:
    """A compiled template. Raises :class:`~reactis.InvalidArgumentError`
    (with the byte offset) for a malformed one."""

    __slots__ = ("_handle", "_names", "_source", "_glob")

    def __init__(self, template: Union[str, bytes]) -> None:
        if isinstance(template, Template):
            template = template.source
        self._handle = cimpl.Template(to_bytes(template, "template"))
        h = self._handle
        self._names: Tuple[str, ...] = tuple(
            h.name(i).decode("ascii") for i in range(h.count()))
        self._source: bytes = h.source()
        self._glob: bytes = h.glob()

    @property
    def names(self) -> Tuple[str, ...]:
        """The placeholder names, in order."""
        return self._names

    @property
    def source(self) -> bytes:
        """The template text as given."""
        return self._source

    @property
    def glob(self) -> bytes:
        """The glob pattern matching every name the template can match (for
        PSUBSCRIBE and SCAN MATCH): literals escaped, placeholders ``*``."""
        return self._glob

    def match(self, name: BytesLike) -> Optional[Dict[str, bytes]]:
        """The captures of *name* (bytes or str) as a dict of bytes, or None
        when it does not fit."""
        rc, caps = self._handle.match(to_bytes(name, "name"), max(len(self._names), 1))
        if rc != cimpl.OK:
            return None
        return dict(zip(self._names, caps))

    def __contains__(self, name: BytesLike) -> bool:
        return self.match(name) is not None

    def format(self, *args: Any, **values: Any) -> bytes:
        """The name for the given values (bytes, str or int), by keyword
        (``format(user_id=42)``), or positionally in placeholder order, or
        one dict (``format({"user_id": 42})``)."""
        if args and values:
            raise TypeError("give the values by keyword or positionally, not both")
        if len(args) == 1 and isinstance(args[0], dict):
            values = dict(args[0])
            args = ()
        if args:
            if len(args) != len(self._names):
                raise TypeError("%r takes %d values, %d given"
                                % (self._source, len(self._names), len(args)))
            values = dict(zip(self._names, args))
        missing = [n for n in self._names if n not in values]
        if missing:
            raise KeyError("missing template value(s): %s" % ", ".join(missing))
        extra = sorted(set(values) - set(self._names))
        if extra:
            raise TypeError("unknown template value(s): %s" % ", ".join(extra))
        argv = [b""] + [_value_bytes(n, values[n]) for n in self._names]
        return self._handle.format(argv)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Template) and other._source == self._source

    def __hash__(self) -> int:
        return hash(self._source)

    def __repr__(self) -> str:
        return "reactis.Template(%r)" % (self._source.decode("utf-8", "backslashreplace"),)

    def __str__(self) -> str:
        return self._source.decode("utf-8", "surrogateescape")
