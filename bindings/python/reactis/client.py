"""A plain connection for commands and publishing."""

from __future__ import annotations

import logging
import threading
from typing import Any, List, NamedTuple, Optional, Tuple

from . import cimpl
from ._util import BytesLike, apply_options, check_url, encode_arg, interrupted, to_bytes
from .errors import StateError

__all__ = ["Client", "ClusterNode", "ClusterStats", "keyslot"]

log = logging.getLogger("reactis")


def keyslot(key: BytesLike) -> int:
    """The Redis Cluster hash slot (0..16383) of *key* (bytes, or str as
    UTF-8), exactly as ``CLUSTER KEYSLOT`` computes it: CRC16 of the key, or
    of its hash tag (``{user1}.a`` and ``{user1}.b`` share a slot)."""
    return cimpl.keyslot(to_bytes(key, "key"))


class ClusterNode(NamedTuple):
    """One node of a Redis Cluster, as :meth:`Client.nodes` lists it."""

    host: str
    """The address the cluster announces for the node."""
    port: int
    """The port reactis uses (the TLS port for ``rediss://``)."""
    id: str
    """The 40-hex node id ("" when unknown)."""
    is_master: bool
    failed: bool
    """True when the cluster reports the node as failed."""
    ranges: List[Tuple[int, int]]
    """The slot ranges a master serves, inclusive, ``[]`` for a replica."""

    @property
    def role(self) -> str:
        return "master" if self.is_master else "replica"

    @property
    def url(self) -> str:
        """``redis://host:port`` of this node alone (no credentials), e.g.
        for a per-node :class:`Client`."""
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "redis://%s:%d" % (host, self.port)


class ClusterStats(NamedTuple):
    """Counters of a cluster :class:`Client` since it was created."""

    moved: int
    """MOVED redirections followed."""
    ask: int
    """ASK redirections followed."""
    retries: int
    """Attempts repeated after a refusal (TRYAGAIN, CLUSTERDOWN...) or a
    node that could not be reached."""
    refreshes: int
    """Topology loads that succeeded."""


_ROLES = {None: cimpl.CLUSTER_MASTERS | cimpl.CLUSTER_REPLICAS,
          "master": cimpl.CLUSTER_MASTERS, "replica": cimpl.CLUSTER_REPLICAS}


class Client:
    """One connection to one Redis server, or to a Redis Cluster.

    ``url`` is ``redis://[[user]:password@]host[:port][/db][?option=...]``
    (default: ``$REDIS_URL``, else ``redis://localhost:6379/0``),
    ``rediss://...`` for TLS (verified by default) or
    ``unix:///path/to/redis.sock``. Keyword *options* are the URL's query
    options (``timeout=5``, ``connect_timeout=5``, ``client_name="worker"``,
    ``ssl_cert_reqs="none"``, ...); ``None`` keeps the default. Unknown
    options raise :class:`~reactis.URLError`.

    **Redis Cluster**: a URL with several hosts
    (``redis://h1:7000,h2:7001``) or the option ``cluster=yes`` makes a
    cluster client, exactly as for :class:`~reactis.Subscriber` and
    :class:`~reactis.Queue`. It learns the topology from the seeds, sends
    each command to the master of its key's hash slot (the key is the first
    argument, except for EVAL/XREAD/... which the core knows), follows
    MOVED and ASK, and retries commands the cluster refused without running
    them (TRYAGAIN, CLUSTERDOWN, a master being failed over) within the
    command timeout. Keyless commands (PING, PUBLISH, INFO...) go to any
    master; multi-key commands need their keys in one slot (a hash tag).
    :meth:`nodes`, :meth:`stats` and :meth:`keyslot` are for cluster users.
    A refusal that outlasts the timeout, or too many redirections, raises
    :class:`~reactis.ClusterError`.

    The client connects on the first command (or :meth:`connect`) and
    reconnects on the next command after a lost link; a command is never sent
    twice by the library. Commands from several threads are serialized.

    Replies come back as Python values: bulk strings as ``bytes``, status
    replies (``OK``, ``PONG``) as ``str``, integers as ``int``, nil as
    ``None``, arrays as ``list``; an error reply raises a
    :class:`~reactis.ReplyError` subclass (inside an array, e.g. from
    ``EXEC``, it is returned as an exception instance).
    """

    def __init__(self, url: Optional[str] = None, **options: Any) -> None:
        url = check_url(url)
        # The core's own test, the one Subscriber and Queue use.
        self._cluster = bool(cimpl.is_cluster_url(url))
        self._handle: Optional[Any] = cimpl.Cluster(url) if self._cluster else cimpl.Conn(url)
        apply_options(self._handle, options)
        self._description = self._handle.describe()
        self._lock = threading.RLock()

    # ---------------------------------------------------------------- state

    def _live(self) -> Any:
        h = self._handle
        if h is None:
            raise StateError("the client is closed", cimpl.ESTATE, "ESTATE")
        return h

    @property
    def closed(self) -> bool:
        return self._handle is None

    @property
    def connected(self) -> bool:
        """True while a link is established (a cluster client: the topology
        is known and a node link is open, or a command is running)."""
        h = self._handle
        if h is None:
            return False
        if not self._cluster:
            return bool(h.is_connected())
        # The cluster handle's node table may be reallocated by a command
        # running in another thread: look only when no call is under way.
        if not self._lock.acquire(blocking=False):
            return True
        try:
            return bool(h.is_connected())
        finally:
            self._lock.release()

    @property
    def cluster(self) -> bool:
        """True for a Redis Cluster client (see the class documentation)."""
        return self._cluster

    def connect(self) -> None:
        """Connects now (closing any current link): TCP/unix/TLS, AUTH,
        SELECT, CLIENT SETNAME. A cluster client instead (re)loads the
        topology from the first known node or seed that answers, keeping its
        node links; each node is connected on first use."""
        h = self._live()
        with self._lock:
            rc = h.connect()
        if self._cluster and rc != cimpl.OK:
            raise interrupted(rc, "connect")

    def close(self) -> None:
        """Closes the connection and frees it. Idempotent; a command running
        in another thread is woken and raises :class:`~reactis.Interrupted`."""
        h, self._handle = self._handle, None
        if h is not None:
            h.wakeup()
        # The handle is freed when the last call using it returns.

    def wakeup(self) -> None:
        """Makes a command waiting in another thread return at once (it
        raises :class:`~reactis.Interrupted`). Safe from any thread."""
        h = self._handle
        if h is not None:
            h.wakeup()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._handle is None else (
            "connected" if self.connected else "not connected")
        kind = "cluster " if self._cluster else ""
        return "<reactis.Client %s%s (%s)>" % (kind, self._description, state)

    @property
    def url(self) -> str:
        """The URL with any password replaced by ``***``."""
        return self._description

    # ---------------------------------------------------------------- commands

    def command(self, *args: Any) -> Any:
        """Runs one command and returns its reply, e.g.
        ``client.command("SET", b"key", b"value", "PX", 1000)``."""
        if not args:
            raise ValueError("command() needs at least the command name")
        argv = [encode_arg(a) for a in args]
        h = self._live()
        with self._lock:
            rc, value = h.call(argv)
        if rc != cimpl.OK:
            raise interrupted(rc, "command %r" % (args[0],))
        return value

    #: redis-py's name for :meth:`command`.
    execute_command = command

    def publish(self, channel: BytesLike, data: BytesLike) -> int:
        """Publishes *data* on *channel* (both bytes or str); returns the
        number of subscribers that received it (in a cluster: those connected
        to the node that took the message)."""
        ch, payload = to_bytes(channel, "channel"), to_bytes(data, "data")
        h = self._live()
        with self._lock:
            if self._cluster:
                # Any master: the cluster forwards PUBLISH to every node, and
                # the count is of the receiving node's subscribers only.
                rc, receivers = h.call(["PUBLISH", ch, payload])
            else:
                rc, receivers = h.publish(ch, payload)
        if rc != cimpl.OK:
            raise interrupted(rc, "publish")
        return int(receivers)

    def ping(self) -> bool:
        """True when the server answers PONG."""
        return self.command("PING") == "PONG"

    def enable_keyspace_events(self, flags: str = "Ex") -> str:
        """See :func:`reactis.enable_keyspace_events`. A cluster client sets
        the flags on every master and replica (notifications are per node,
        and a promoted replica must keep them) and returns the first
        master's; the first node that failed raises, naming the node, after
        the others were tried."""
        if not isinstance(flags, str):
            raise TypeError("flags must be a str, not %s" % type(flags).__name__)
        h = self._live()
        with self._lock:
            effective = h.notify_ensure(flags)
            if effective is None:  # a cluster call woken up or interrupted
                raise interrupted(h.err() or cimpl.WOKEN, "enable_keyspace_events")
        log.debug("notify-keyspace-events on %s: %s", self._description, effective)
        return effective

    # ---------------------------------------------------------------- cluster

    def _cluster_handle(self, what: str) -> Any:
        h = self._live()
        if not self._cluster:
            raise StateError("%s needs a cluster client (a URL with several hosts "
                             "or cluster=yes)" % what, cimpl.ESTATE, "ESTATE")
        return h

    @staticmethod
    def keyslot(key: BytesLike) -> int:
        """The hash slot of *key*; see :func:`reactis.keyslot`."""
        return keyslot(key)

    def nodes(self, role: Optional[str] = None) -> List[ClusterNode]:
        """The cluster's nodes as the client knows them (the topology is
        loaded first if needed): masters first, ordered by their first slot,
        then replicas. *role* ``"master"`` or ``"replica"`` keeps only
        those. Cluster clients only (else :class:`~reactis.StateError`)."""
        if role not in _ROLES:
            raise ValueError("role must be 'master', 'replica' or None, not %r" % (role,))
        h = self._cluster_handle("nodes()")
        want = 64
        while True:
            with self._lock:
                total, items = h.nodes(_ROLES[role], want)
            if total < 0:
                raise interrupted(h.err() or cimpl.WOKEN, "nodes")
            if total <= want:
                return [ClusterNode(*t) for t in items]
            want = total  # the topology grew meanwhile: ask for all of it

    def stats(self) -> ClusterStats:
        """Redirections, retries and topology loads so far (cluster clients
        only; no I/O)."""
        h = self._cluster_handle("stats()")
        with self._lock:  # the counters change under a running command
            return ClusterStats(*h.stats())
