"""The errors reactis raises.

Every error of the library is a :class:`reactis.Error` with the C core's
status ``code`` (a negative number) and its ``name`` (``"EAUTH"``). The
subclass is chosen by the C code, so Python and Ruby agree on what went wrong.
Wrong Python arguments raise the usual :class:`TypeError` and
:class:`ValueError`; a malformed URL raises :class:`URLError`, which is also a
:class:`ValueError`.

Hierarchy::

    Error
     +-- ConnectionError            could not connect / resolve, link lost
     |    +-- ResolveError
     |    +-- ConnectionLostError
     |    +-- AuthenticationError   wrong password, unknown ACL user
     |    +-- TLSError
     |         +-- TLSVerifyError   the certificate could not be verified
     +-- TimeoutError               the server did not answer in time
     +-- ProtocolError              the peer does not speak RESP
     +-- ReplyError                 the server replied with an error
     |    +-- WrongTypeError, NoPermissionError, ConfigForbiddenError,
     |        ServerOutOfMemoryError, NoScriptError, ReadOnlyError,
     |        LoadingError, BusyError
     +-- PayloadTooLargeError (also ValueError)
     +-- InvalidArgumentError (also ValueError)
     |    +-- URLError
     +-- OutOfMemoryError (also MemoryError)
     +-- StateError                 the handle is closed or in the wrong state
     +-- StaleDeliveryError, NotFoundError   (the queue)
     +-- SystemCallError
     +-- ClusterError               not a cluster, or no node serves the slot
     +-- Interrupted                a blocking command was woken or interrupted
"""

from __future__ import annotations

from typing import Dict, Optional, Type

__all__ = [
    "Error", "ConnectionError", "ResolveError", "ConnectionLostError",
    "AuthenticationError", "TLSError", "TLSVerifyError", "TimeoutError",
    "ProtocolError", "ReplyError", "WrongTypeError", "NoPermissionError",
    "ConfigForbiddenError", "ServerOutOfMemoryError", "NoScriptError",
    "ReadOnlyError", "LoadingError", "BusyError", "PayloadTooLargeError",
    "InvalidArgumentError", "URLError", "OutOfMemoryError", "StateError",
    "StaleDeliveryError", "NotFoundError", "SystemCallError", "ClusterError", "Interrupted",
    "error_class",
]


class Error(Exception):
    """Base class of every reactis error.

    Attributes:
        code: the C core's status code (negative for errors; positive only
            for :class:`Interrupted`), or ``None`` when raised by Python code.
        name: the code's name without prefix, e.g. ``"EAUTH"``.
        message: what happened, never containing a password.
    """

    def __init__(self, message: str = "", code: Optional[int] = None,
                 name: Optional[str] = None) -> None:
        super().__init__(message, code, name)
        self.message = message
        self.code = code
        self.name = name

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return "%s(%r, code=%r, name=%r)" % (type(self).__name__, self.message,
                                             self.code, self.name)


class ConnectionError(Error):
    """Could not connect, or the connection was lost."""


class ResolveError(ConnectionError):
    """The host name could not be resolved."""


class ConnectionLostError(ConnectionError):
    """The connection was lost during a command."""


class AuthenticationError(ConnectionError):
    """Authentication failed (wrong password or ACL user)."""


class TLSError(ConnectionError):
    """The TLS handshake or TLS I/O failed."""


class TLSVerifyError(TLSError):
    """The server's certificate (or host name) could not be verified."""


class TimeoutError(Error):
    """The server did not answer in time."""


class ProtocolError(Error):
    """The peer does not speak RESP."""


class ReplyError(Error):
    """The server replied with an error (the message is the server's text)."""


class WrongTypeError(ReplyError):
    """A key holds a value of the wrong type (WRONGTYPE)."""


class NoPermissionError(ReplyError):
    """The ACL user lacks permission for the command (NOPERM)."""


class ConfigForbiddenError(ReplyError):
    """CONFIG is not allowed on this server (managed Redis); the message
    says how to enable keyspace notifications on that kind of service."""


class ServerOutOfMemoryError(ReplyError):
    """The server reached maxmemory (OOM)."""


class NoScriptError(ReplyError):
    """The server does not know the script (NOSCRIPT)."""


class ReadOnlyError(ReplyError):
    """The server is a read-only replica (READONLY)."""


class LoadingError(ReplyError):
    """The server is loading its dataset (LOADING)."""


class BusyError(ReplyError):
    """The server is busy running a script (BUSY)."""


class PayloadTooLargeError(Error, ValueError):
    """The payload is larger than the configured maximum."""


class InvalidArgumentError(Error, ValueError):
    """The C core refused an argument."""


class URLError(InvalidArgumentError):
    """Malformed Redis URL or unknown option."""


class OutOfMemoryError(Error, MemoryError):
    """The library ran out of memory (or file descriptors)."""


class StateError(Error):
    """The handle is closed or in the wrong state for this call."""


class StaleDeliveryError(Error):
    """The delivery is stale: the message was reclaimed by another worker."""


class NotFoundError(Error):
    """No such message."""


class SystemCallError(Error):
    """A system call failed."""


class ClusterError(Error):
    """Redis Cluster: the server is not a cluster, no node serves the slot,
    or the cluster kept refusing the command (CLUSTERDOWN, TRYAGAIN, a MOVED
    or ASK that could not be followed: too many redirections) until the
    command timeout; the message is the server's last word."""


class Interrupted(Error):
    """A blocking command was woken up (``wakeup()``) or interrupted by a
    signal whose handler did not raise; its reply was discarded."""


# C status name -> class. Names, not numbers, so the table reads like the
# core's RX_STATUS_MAP; unknown (newer) codes get the base class.
_BY_NAME: Dict[str, Type[Error]] = {
    "ENOMEM": OutOfMemoryError,
    "EINVAL": InvalidArgumentError,
    "EURL": URLError,
    "ERESOLVE": ResolveError,
    "ECONNECT": ConnectionError,
    "ETIMEDOUT": TimeoutError,
    "EIO": ConnectionLostError,
    "EPROTO": ProtocolError,
    "EAUTH": AuthenticationError,
    "ETLS": TLSError,
    "ETLSVERIFY": TLSVerifyError,
    "EREPLY": ReplyError,
    "EWRONGTYPE": WrongTypeError,
    "ENOPERM": NoPermissionError,
    "ECONFIG": ConfigForbiddenError,
    "EOOM": ServerOutOfMemoryError,
    "ENOSCRIPT": NoScriptError,
    "ETOOBIG": PayloadTooLargeError,
    "ESTATE": StateError,
    "ESTALE": StaleDeliveryError,
    "ENOTFOUND": NotFoundError,
    "ESYS": SystemCallError,
    "EREADONLY": ReadOnlyError,
    "ELOADING": LoadingError,
    "EBUSY": BusyError,
    "ECLUSTER": ClusterError,
    "WOKEN": Interrupted,
    "EINTR": Interrupted,
}

# Error replies inside arrays (EXEC, pipelines) reach Python unclassified;
# their first word says what they are, as the core's own mapping does.
_BY_REPLY_PREFIX: Dict[str, Type[Error]] = {
    "WRONGTYPE": WrongTypeError,
    "NOPERM": NoPermissionError,
    "OOM": ServerOutOfMemoryError,
    "NOSCRIPT": NoScriptError,
    "READONLY": ReadOnlyError,
    "LOADING": LoadingError,
    "BUSY": BusyError,
    "NOAUTH": AuthenticationError,
    "WRONGPASS": AuthenticationError,
    "CLUSTERDOWN": ClusterError,
    # What rx_cluster_call reports as RX_ECLUSTER, so an EXEC element or a
    # single-node Client pointed at a cluster node says the same.
    "TRYAGAIN": ClusterError,
    "MOVED": ClusterError,
    "ASK": ClusterError,
}


def error_class(name: str, message: str = "") -> Type[Error]:
    """The class for a C status name (``"EAUTH"``)."""
    cls = _BY_NAME.get(name, Error)
    if cls is ReplyError and message:
        cls = _BY_REPLY_PREFIX.get(message.split(" ", 1)[0], ReplyError)
    return cls


def _from_status(code: int, name: str, message: str) -> Error:
    """The factory the C glue calls (registered in reactis/__init__.py)."""
    return error_class(name, message)(message, code, name)

