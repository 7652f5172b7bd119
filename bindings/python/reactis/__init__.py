"""reactis: Redis pub/sub, keyspace notifications and a delayed queue that
you can depend on (Client, Subscriber, Queue).

All behaviour lives in a C core (``reactis.cimpl``, private); this package
translates types, errors, iteration, signals and logging::

    import reactis

    with reactis.Subscriber("redis://localhost:6379/0") as sub:
        sub.psubscribe("__keyevent@0__:expired")
        for msg in sub.listen():
            if msg.kind == "gap":
                ...  # reconnected: re-read state you may have missed
            elif msg.key_event:
                print("expired:", msg.key_event.key)

    q = reactis.Queue("sms", url="redis://localhost:6379/0", visibility_timeout=30)
    q.schedule(b"payload", delay=900, id="AAA")
    q.work(handler)   # acks on return, retries on exception, stops on SIGTERM

URLs default to ``$REDIS_URL``, else ``redis://localhost:6379/0``.
``python -m reactis`` is the command-line tool (``worker``, ``schedule``,
``stats``, ``tail``, ``dead``, ``events``, ...).

Errors are :class:`reactis.Error` subclasses chosen by the C core; logging
goes to the ``reactis`` logger.
"""

import logging as _logging

from . import cimpl as _cimpl
from . import errors as _errors
from .client import Client, ClusterNode, ClusterStats, keyslot
from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors_all
from .keyspace import KeyEvent, enable_keyspace_events
from .queue import Job, Queue, QueueStats, Scheduled
from .subscriber import Message, Subscriber
from .template import Template
from .timers import Fired, Timers, claim_once
from .bridge import Expiry, ExpiryBridge
from .worker import WorkerInterrupt

# The C glue builds its exceptions through this factory.
_cimpl.set_error_factory(_errors._from_status)

_logging.getLogger("reactis").addHandler(_logging.NullHandler())

#: The version of the package and of the C core it contains.
__version__ = _cimpl.version()


def core_version() -> str:
    """The C core's version string, "MAJOR.MINOR.PATCH"."""
    return _cimpl.version()


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``."""
    return _cimpl.url_redact(url)


__all__ = [
    "Client", "ClusterNode", "ClusterStats", "keyslot",
    "Subscriber", "Message", "KeyEvent", "enable_keyspace_events",
    "Queue", "Job", "Scheduled", "QueueStats", "WorkerInterrupt",
    "core_version", "redact_url", "__version__",
    "Template", "Timers", "Fired", "claim_once", "ExpiryBridge", "Expiry",
] + list(_errors_all)
