"""``python -m reactis``: the command-line tool, in Python.

The same commands, options, output and exit codes as the C ``reactis`` tool
(tools/reactis.c), plus ``worker``, which runs a Python handler on a queue so
that a Procfile line needs nothing else::

    worker: python -m reactis worker app.jobs:send_sms --queue sms --concurrency 4

Exit codes scripts can rely on:
  0  done
  1  nothing to do: the message was not waiting, the dead letter was not
     found, or schedule kept an existing message with the same id
  2  usage error (unknown command or option, bad value)
  3  connection or server error (trying again later may help)
  4  refused: payload too big, a key of the wrong type, ... (trying again
     will not help)
The server comes from --url, else $REDIS_URL, else redis://localhost:6379/0.
"""

from __future__ import annotations

import base64
import datetime as _dt
import importlib
import json
import logging
import os
import signal
import sys
import time
from typing import IO, Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import cimpl
from ._util import default_url
from .client import Client
from .errors import Error, Interrupted
from .keyspace import KeyEvent
from .queue import Queue
from .subscriber import Subscriber

EX_OK, EX_NO, EX_USAGE, EX_SERVER, EX_REFUSED = 0, 1, 2, 3, 4

#: Errors that trying again will not fix (exit 4); every other is exit 3.
_REFUSED = {"ETOOBIG", "EWRONGTYPE", "EINVAL", "ENOPERM", "EURL", "EAUTH"}

USAGE_MAIN = """\
usage: python -m reactis [--url URL] [--json] COMMAND [ARGS]

Commands:
  schedule QUEUE PAYLOAD   schedule a message (PAYLOAD '-' reads stdin)
  cancel QUEUE ID          remove a waiting message
  reschedule QUEUE ID      move a waiting message (--delay or --at)
  run-now QUEUE ID         make a waiting message due now
  stats [QUEUE]            counters of one queue, or of every queue found
  tail QUEUE               print deliveries as they happen (consumes nothing)
  dead list|requeue|purge QUEUE   the dead letters
  events                   print parsed keyspace notifications
  worker MODULE:FUNCTION --queue QUEUE   run a handler on every delivery

Options for every command:
  --url URL   the server (default: $REDIS_URL, else redis://localhost:6379/0)
  --json      one JSON object per line instead of text
  --help      help for the command

Exit codes: 0 done, 1 nothing to do (not waiting, not found, duplicate
kept), 2 usage error, 3 connection or server error, 4 refused (too big,
wrong key type).
"""

USAGE = {
    "schedule": """\
usage: python -m reactis schedule QUEUE PAYLOAD [--id ID] [--delay D | --at MS] [--replace]
  PAYLOAD     the message bytes; '-' reads them from standard input
  --id ID     message id (default: a generated one, printed)
  --delay D   due after D: 500ms, 10s, 15m, 2h, 3d, or plain ms (default 0)
  --at MS     due at this epoch time in milliseconds
  --replace   if ID is waiting, replace its payload and due time
                (default: keep the waiting one and exit 1)
""",
    "cancel": """\
usage: python -m reactis cancel QUEUE ID
  exits 1 when the message was not waiting
""",
    "reschedule": """\
usage: python -m reactis reschedule QUEUE ID (--delay D | --at MS)
  exits 1 when the message was not waiting
""",
    "run-now": """\
usage: python -m reactis run-now QUEUE ID
  exits 1 when the message was not waiting
""",
    "stats": """\
usage: python -m reactis stats [QUEUE]
  without QUEUE: every queue found on the server (SCAN for rx:{*}:* keys)
""",
    "tail": """\
usage: python -m reactis tail QUEUE [--count N] [--timeout MS]
  prints each delivery as a consumer receives it; takes nothing away
  --count N     stop after N deliveries
  --timeout MS  stop after MS without a delivery
""",
    "dead": """\
usage: python -m reactis dead list QUEUE [--after TOKEN] [--count N]
       python -m reactis dead requeue QUEUE (TOKEN | --all) [--delay D]
       python -m reactis dead purge QUEUE (TOKEN | --all)
  list prints the oldest first (default count 100); requeue puts dead
  letters back on the schedule with fresh attempts; purge deletes them.
  Exits 1 when TOKEN is not found.
""",
    "events": """\
usage: python -m reactis events [--pattern P]... [--channel C]... [--enable FLAGS]
                                [--count N] [--timeout MS]
  subscribes (default pattern __key*__:*) and prints each notification
  parsed: space, db, event, key. --enable makes sure notify-keyspace-events
  holds FLAGS (e.g. KEA) first; it needs CONFIG (see the README).
""",
    "worker": """\
usage: python -m reactis worker MODULE:FUNCTION --queue QUEUE [--concurrency N]
                                [--batch N] [--burst] [--max-jobs N] [--grace S]
                                [--visibility-timeout S] [--max-attempts N]
                                [--log-level LEVEL]
  runs FUNCTION(job) from MODULE (imported from the current directory or
  PYTHONPATH; MODULE.Class.method and MODULE:attr.attr work too) for every
  delivery of QUEUE: a normal return acks the job, an exception retries it
  with backoff (dead letter after max attempts). SIGTERM or SIGINT finishes
  the current job and exits 0; a second signal interrupts it and gives it
  back. Connection errors are logged and retried.
  --queue QUEUE             the queue (required)
  --concurrency N           worker threads, each with its own connection (1)
  --batch N                 jobs fetched at a time, 1..1000 (default adaptive)
  --burst                   exit when nothing is due
  --max-jobs N              exit after N jobs
  --grace S                 after a signal, interrupt a job still running
                              after S seconds (default: let it finish)
  --visibility-timeout S    lease of a delivery in seconds (default 30)
  --max-attempts N          deliveries before the dead letters (default 10)
  --log-level LEVEL         DEBUG, INFO (default), WARNING, ERROR
""",
}


class Usage(Exception):
    """A usage error: the message, and the usage text to print after it."""

    def __init__(self, usage: str, message: str) -> None:
        super().__init__(message)
        self.usage = usage


class Output:
    """Where the command prints; text or JSON lines."""

    def __init__(self, json_mode: bool, out: IO[bytes], err: IO[str]) -> None:
        self.json = json_mode
        self.out = out
        self.err = err

    def line(self, text: Any) -> None:
        if isinstance(text, str):
            text = text.encode("utf-8", "surrogateescape")
        self.out.write(text + b"\n")

    def obj(self, d: Dict[str, Any]) -> None:
        self.line(json.dumps(d, ensure_ascii=False, separators=(",", ":")))

    def flush(self) -> None:
        self.out.flush()

    def warn(self, text: str) -> None:
        self.err.write("reactis: %s\n" % text)
        self.err.flush()


# ---------------------------------------------------------------- formatting

def _utf8(b: bytes) -> Optional[str]:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return None


def json_bytes(d: Dict[str, Any], key: str, value: bytes) -> None:
    """key: text for UTF-8, else key_base64: base64 (as the C tool)."""
    text = _utf8(value)
    if text is not None:
        d[key] = text
    else:
        d[key + "_base64"] = base64.b64encode(value).decode()


def json_text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    return str(value)


def text_bytes(value: Any) -> bytes:
    """Printable ASCII and valid UTF-8 as they are, anything else as \\xNN."""
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    ok = _utf8(value) is not None
    out = bytearray()
    for c in value:
        if (c >= 0x20 and c != 0x7F and (c < 0x80 or ok)) or c == 0x09:
            out.append(c)
        else:
            out += b"\\x%02x" % c
    return bytes(out)


def iso_time(ms: int) -> str:
    if ms <= 0:
        return "-"
    t = _dt.datetime.fromtimestamp(ms // 1000, _dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (ms % 1000)


# ---------------------------------------------------------------- arguments

def parse_duration(s: str) -> int:
    """500ms, 10s, 15m, 2h, 3d, or plain ms -> ms; ValueError if bad."""
    units = (("ms", 1), ("s", 1000), ("m", 60000), ("h", 3600000), ("d", 86400000))
    mul, num = 1, s
    for suffix, m in units:
        if s.endswith(suffix):
            mul, num = m, s[: -len(suffix)]
            break
    v = float(num)
    if v != v or not -1e15 <= v <= 1e15 or not num.strip() or num != num.strip():
        raise ValueError(s)
    return int(v * mul)


def parse_count(s: str) -> int:
    if not s.isdigit():
        raise ValueError(s)
    return int(s)


class Args:
    """A hand-rolled parser that behaves like the C tool's: options take
    their value from the next argument (or after '='), anything else is
    positional."""

    def __init__(self, cmd: str, argv: Sequence[str], with_value: Sequence[str],
                 flags: Sequence[str] = (), repeat: Sequence[str] = ()) -> None:
        self.usage = USAGE[cmd]
        self.pos: List[str] = []
        self.opts: Dict[str, Any] = {}
        self.help = False
        i = 0
        while i < len(argv):
            a = argv[i]
            name, eq, inline = a.partition("=")
            if a in ("--help", "-h"):
                self.help = True
            elif name in with_value and a.startswith("--"):
                if eq:
                    value = inline
                elif i + 1 < len(argv):
                    i += 1
                    value = argv[i]
                else:
                    raise Usage(self.usage, "unknown option or missing value: %s" % a)
                if name in repeat:
                    self.opts.setdefault(name, []).append(value)
                else:
                    self.opts[name] = value
            elif a in flags:
                self.opts[a] = True
            elif a.startswith("--"):
                raise Usage(self.usage, "unknown option or missing value: %s" % a)
            else:
                self.pos.append(a)
            i += 1

    def fail(self, fmt: str, *args: Any) -> Usage:
        return Usage(self.usage, fmt % args)

    def count(self, name: str, default: int) -> int:
        v = self.opts.get(name)
        if v is None:
            return default
        try:
            return parse_count(v)
        except ValueError:
            raise self.fail("bad %s '%s'", name.lstrip("-"), v) from None

    def duration(self, name: str, default: int) -> int:
        v = self.opts.get(name)
        if v is None:
            return default
        try:
            return parse_duration(v)
        except ValueError:
            raise self.fail("bad duration '%s'", v) from None


# ---------------------------------------------------------------- the commands

class Tool:
    def __init__(self, url: str, out: Output) -> None:
        self.url = url
        self.o = out

    # Errors become exit codes, as in the C tool.
    def fail(self, e: Error) -> int:
        name = e.name or "ERROR"
        if self.o.json:
            self.o.obj({"error": name, "message": e.message})
            self.o.flush()
        self.o.warn(e.message or cimpl.strerror(e.code or 0))
        return EX_REFUSED if name in _REFUSED else EX_SERVER

    def queue(self, name: str) -> Queue:
        return Queue(name, self.url)

    def warning(self, q: Queue) -> None:
        try:
            w = q.warning
        except Error:
            return
        if w:
            self.o.warn("warning: %s" % w)

    # ------------------------------------------------------------ schedule

    def schedule(self, argv: List[str]) -> int:
        a = Args("schedule", argv, ("--id", "--delay", "--at"), ("--replace",))
        if a.help:
            return self.help("schedule")
        # --delay and --at: the last one given wins, as in the C tool.
        when_opt = None
        for x in argv:
            if x.split("=")[0] in ("--delay", "--at"):
                when_opt = x.split("=")[0]
        delay_ms = a.duration("--delay", 0) if when_opt == "--delay" else 0
        at_ms = None
        if when_opt == "--at":
            try:
                at_ms = parse_count(a.opts["--at"])
            except ValueError:
                raise a.fail("bad epoch ms '%s'", a.opts["--at"]) from None
        if len(a.pos) > 2:
            raise a.fail("unexpected argument '%s'", a.pos[2])
        if len(a.pos) != 2:
            raise a.fail("QUEUE and PAYLOAD are needed")
        name, payload = a.pos
        data = sys.stdin.buffer.read() if payload == "-" else os.fsencode(payload)
        mid = a.opts.get("--id")
        mid = os.fsencode(mid) if mid else None
        with self.queue(name) as q:
            if at_ms is not None:
                s = q.schedule(data, at=at_ms / 1000.0, id=mid, replace=bool(a.opts.get("--replace")))
            else:
                s = q.schedule(data, delay=delay_ms / 1000.0, id=mid,
                               replace=bool(a.opts.get("--replace")))
            self.warning(q)
        if self.o.json:
            self.o.obj({"queue": name, "id": json_text(s.id), "outcome": s.outcome,
                        "due_ms": s.due_ms})
        elif s.outcome == "exists":
            self.o.line(text_bytes(s.id) + b": already waiting, kept (due %s); --replace "
                        b"replaces it" % iso_time(s.due_ms).encode())
        else:
            self.o.line(text_bytes(s.id) + (" %s, due %s" % (s.outcome, iso_time(s.due_ms))).encode())
        return EX_NO if s.outcome == "exists" else EX_OK

    # ------------------------------------------------------------ cancel, reschedule, run-now

    def manage(self, cmd: str, argv: List[str]) -> int:
        resched = cmd == "reschedule"
        a = Args(cmd, argv, ("--delay", "--at") if resched else ())
        if a.help:
            return self.help(cmd)
        if len(a.pos) > 2:
            raise a.fail("unexpected argument '%s'", a.pos[2])
        if len(a.pos) != 2:
            raise a.fail("QUEUE and ID are needed")
        delay_ms, at_ms = 0, None
        if resched:
            when_opt = None
            for x in argv:
                if x.split("=")[0] in ("--delay", "--at"):
                    when_opt = x.split("=")[0]
            if when_opt is None:
                raise a.fail("--delay or --at is needed")
            if when_opt == "--delay":
                delay_ms = a.duration("--delay", 0)
            else:
                try:
                    at_ms = parse_count(a.opts["--at"])
                except ValueError:
                    raise a.fail("bad epoch ms '%s'", a.opts["--at"]) from None
        name, mid = a.pos
        bid = os.fsencode(mid)
        with self.queue(name) as q:
            if cmd == "cancel":
                waiting = q.cancel(bid)
            elif resched:
                if at_ms is not None:
                    waiting = q.reschedule(bid, at=at_ms / 1000.0)
                else:
                    waiting = q.reschedule(bid, delay=delay_ms / 1000.0)
            else:
                waiting = q.run_now(bid)
            self.warning(q)
        if self.o.json:
            self.o.obj({"queue": name, "id": mid, "was_waiting": waiting})
        elif waiting:
            what = {"cancel": "cancelled", "reschedule": "rescheduled"}.get(cmd, "due now")
            self.o.line("%s: %s" % (mid, what))
        else:
            self.o.line("%s: not waiting (unknown, delivered already, or dead)" % mid)
        return EX_OK if waiting else EX_NO

    # ------------------------------------------------------------ stats

    def stats(self, argv: List[str]) -> int:
        a = Args("stats", argv, ())
        if a.help:
            return self.help("stats")
        if len(a.pos) > 1:
            raise a.fail("unexpected argument '%s'", a.pos[1])
        if a.pos:
            return self.print_stats(a.pos[0])
        names = self.list_queues()
        if not names and not self.o.json:
            self.o.line("no queues found")
        ex = EX_OK
        for n in names:
            # A queue that cannot be read is reported; the others still
            # print, and the exit code is the first failure's.
            try:
                one = self.print_stats(n)
            except Error as e:
                one = self.fail(e)
            if one != EX_OK and ex == EX_OK:
                ex = one
        return ex

    def print_stats(self, name: str) -> int:
        with self.queue(name) as q:
            st = q.stats()
            self.warning(q)
        if self.o.json:
            d: Dict[str, Any] = {"queue": name}
            d.update(st._asdict())
            self.o.obj(d)
        else:
            self.o.line("%s\n  scheduled %d  ready %d  in flight %d  dead %d\n"
                        "  lag %d ms  consumers %d  next due %s\n"
                        "  acked %d  failures %d  crashes %d  dead total %d"
                        % (name, st.scheduled, st.ready, st.in_flight, st.dead, st.lag_ms,
                           st.consumers, iso_time(st.next_due_ms), st.acked, st.failures,
                           st.crashes, st.dead_total))
        return EX_OK

    def list_queues(self) -> List[str]:
        names = set()
        with Client(self.url) as c:
            cursor = b"0"
            while True:
                r = c.command("SCAN", cursor, "MATCH", "rx:{*}:?", "COUNT", 1000)
                if not isinstance(r, list) or len(r) != 2:
                    break
                cursor = r[0]
                for k in r[1]:
                    if len(k) >= 8 and k.startswith(b"rx:{") and k[-2:-1] == b":" \
                            and k[-3:-2] == b"}":
                        names.add(k[4:-3].decode("utf-8", "surrogateescape"))
                if cursor in (b"0", "0"):
                    break
        return sorted(names)

    # ------------------------------------------------------------ tail

    def tail(self, argv: List[str]) -> int:
        a = Args("tail", argv, ("--count", "--timeout"))
        if a.help:
            return self.help("tail")
        count = a.count("--count", 0)
        timeout = a.count("--timeout", -1)
        if len(a.pos) > 1:
            raise a.fail("unexpected argument '%s'", a.pos[1])
        if not a.pos:
            raise a.fail("QUEUE is needed")
        name = a.pos[0]
        if "{" in name or "}" in name:
            raise a.fail("bad queue name '%s'", name)
        key = "rx:{%s}:s" % name
        with Client(self.url) as c, _StopOnSignals(c.wakeup) as stop:
            # Start after the newest entry, so nothing added between two
            # reads is missed (XREAD with $ would skip it).
            r = c.command("XREVRANGE", key, "+", "-", "COUNT", 1)
            last = r[0][0] if isinstance(r, list) and len(r) == 1 else b"0-0"
            seen, idle_since = 0, time.monotonic()
            # Every delivery is an entry added to the ready stream right
            # before the consumer group reads it: a plain XREAD sees them
            # all, taking none.
            while not stop.stopped and (not count or seen < count):
                block = 500
                if timeout >= 0:
                    left = timeout - int((time.monotonic() - idle_since) * 1000)
                    if left <= 0:
                        break
                    block = min(block, left)
                try:
                    r = c.command("XREAD", "COUNT", 100, "BLOCK", block, "STREAMS", key, last)
                except Interrupted:
                    break
                if isinstance(r, list) and len(r) == 1:
                    for entry in r[0][1]:
                        if count and seen >= count:
                            break
                        self.print_entry(name, entry)
                        last = entry[0]
                        seen += 1
                    self.o.flush()
                    idle_since = time.monotonic()
        return EX_OK

    def print_entry(self, queue: str, entry: list) -> None:
        token, kv = entry[0], entry[1] or []
        f: Dict[bytes, bytes] = {}
        for i in range(0, len(kv) - 1, 2):
            f[kv[i]] = kv[i + 1]

        def num(k: bytes) -> int:
            try:
                return int(f.get(k) or 0)
            except ValueError:
                return 0

        token_s = token.decode() if isinstance(token, bytes) else str(token)
        due, enq, attempt = num(b"due"), num(b"enq"), num(b"attempt")
        fails, crashes = num(b"fail"), num(b"crash")
        # A delivery's meta field: "due enq attempt fail crash".
        meta = (f.get(b"meta") or b"").split()
        if len(meta) == 5 and all(m.lstrip(b"-").isdigit() for m in meta):
            due, enq, attempt, fails, crashes = (int(m) for m in meta)
        if self.o.json:
            d: Dict[str, Any] = {"queue": queue, "token": token_s,
                                 "id": json_text(f.get(b"id", b""))}
            json_bytes(d, "payload", f.get(b"payload", b""))
            d.update(due_ms=due, enqueued_ms=enq, attempt=attempt, failures=fails,
                     crashes=crashes, error=json_text(f.get(b"err", b"")))
            self.o.obj(d)
        else:
            line = ("%s  %s  id=" % (token_s, iso_time(due))).encode()
            line += text_bytes(f.get(b"id", b"")) + b"  attempt=%d" % attempt
            if f.get(b"err"):
                line += b"  error=" + text_bytes(f[b"err"])
            self.o.line(line + b"\n  " + text_bytes(f.get(b"payload", b"")))

    # ------------------------------------------------------------ dead letters

    def dead(self, argv: List[str]) -> int:
        if not argv or argv[0] in ("--help", "-h"):
            if not argv:
                self.o.err.write(USAGE["dead"])
                return EX_USAGE
            return self.help("dead")
        sub = argv[0]
        if sub not in ("list", "requeue", "purge"):
            raise Usage(USAGE["dead"], "unknown dead-letter command '%s'" % sub)
        a = Args("dead", argv[1:], ("--after", "--count", "--delay"), ("--all",))
        if a.help:
            return self.help("dead")
        count = a.count("--count", 100)
        if "--count" in a.opts and not 1 <= count <= 1000:
            raise a.fail("bad count '%s' (1..1000)", a.opts["--count"])
        delay = a.duration("--delay", 0)
        if len(a.pos) > 2:
            raise a.fail("unexpected argument '%s'", a.pos[2])
        if not a.pos:
            raise a.fail("QUEUE is needed")
        name = a.pos[0]
        token = a.pos[1] if len(a.pos) > 1 else None
        everything = bool(a.opts.get("--all"))
        if sub != "list" and (token is None) == (not everything):
            raise a.fail("%s: give a TOKEN or --all", sub)
        with self.queue(name) as q:
            if sub == "list":
                letters = q.dead_letters(count, a.opts.get("--after") or None)
                self.warning(q)
                for d in letters:
                    self.print_dead(name, d)
                if not letters and not self.o.json:
                    self.o.line("no dead letters")
                return EX_OK
            target = None if everything else token
            if sub == "requeue":
                rc, n = q._call("dead_requeue", target, delay)
            else:
                rc, n = q._call("dead_purge", target)
            self.warning(q)
        what = "requeued" if sub == "requeue" else "purged"
        if self.o.json:
            self.o.obj({"queue": name, what: int(n)})
        elif rc == cimpl.NOMATCH:
            self.o.line("%s: no such dead letter" % token)
        else:
            self.o.line("%d dead letter%s %s" % (n, "" if n == 1 else "s", what))
        return EX_NO if rc == cimpl.NOMATCH else EX_OK

    def print_dead(self, queue: str, d: Any) -> None:
        if self.o.json:
            o: Dict[str, Any] = {"queue": queue, "token": d.token, "id": json_text(d.id)}
            json_bytes(o, "payload", d.payload)
            o.update(attempts=d.attempt, failures=d.failures, crashes=d.crashes,
                     due_ms=d.due_ms, enqueued_ms=d.enqueued_ms, dead_ms=d.delivered_ms,
                     error=d.error)
            self.o.obj(o)
        else:
            line = ("%s  died %s  id=" % (d.token, iso_time(d.delivered_ms))).encode()
            line += text_bytes(d.id)
            line += b"  attempts=%d (failures %d, crashes %d)\n  error: " % (
                d.attempt, d.failures, d.crashes)
            line += text_bytes(d.error) + b"\n  payload: " + text_bytes(d.payload)
            self.o.line(line)

    # ------------------------------------------------------------ events

    def events(self, argv: List[str]) -> int:
        a = Args("events", argv, ("--pattern", "--channel", "--enable", "--count", "--timeout"),
                 repeat=("--pattern", "--channel"))
        if a.help:
            return self.help("events")
        if a.pos:
            raise a.fail("unknown argument or missing value: %s", a.pos[0])
        count = a.count("--count", 0)
        timeout = a.count("--timeout", -1)
        patterns = a.opts.get("--pattern", [])
        channels = a.opts.get("--channel", [])
        if not patterns and not channels:
            patterns = ["__key*__:*"]
        if a.opts.get("--enable"):
            with Client(self.url) as c:
                eff = c.enable_keyspace_events(a.opts["--enable"])
            if not self.o.json:
                self.o.warn('notify-keyspace-events is now "%s"' % eff)
        with Subscriber(self.url) as sub, _StopOnSignals(sub.wakeup) as stop:
            for p in patterns:
                sub.psubscribe(p)
            for ch in channels:
                sub.subscribe(ch)
            if not self.o.json:
                self.o.warn("listening (Ctrl-C stops)")
            seen, idle_since = 0, time.monotonic()
            while not stop.stopped and (not count or seen < count):
                wait = 0.5
                if timeout >= 0:
                    left = timeout / 1000.0 - (time.monotonic() - idle_since)
                    if left <= 0:
                        break
                    wait = min(wait, left)
                msg = sub.get_message(timeout=wait)
                if msg is None:
                    continue
                idle_since = time.monotonic()
                if msg.kind == "gap":
                    if self.o.json:
                        self.o.obj({"gap": True, "start_ms": msg.gap_start_ms,
                                    "end_ms": msg.gap_end_ms, "reconnects": msg.reconnects})
                    else:
                        self.o.line("-- reconnected: events between %s and %s may be missing"
                                    % (iso_time(msg.gap_start_ms), iso_time(msg.gap_end_ms)))
                    self.o.flush()
                    continue
                seen += 1
                self.print_event(msg.channel, msg.data)
                self.o.flush()
        return EX_OK

    def print_event(self, channel: bytes, data: bytes) -> None:
        ke = KeyEvent.parse(channel, data)
        if self.o.json:
            d: Dict[str, Any] = {"channel": json_text(channel)}
            if ke is not None:
                d.update(space=ke.space, db=ke.db, event=ke.event)
                json_bytes(d, "key", ke.key)
            else:
                json_bytes(d, "message", data)
            self.o.obj(d)
        elif ke is not None:
            self.o.line(("db%d %-10s " % (ke.db, ke.event)).encode() + text_bytes(ke.key))
        else:
            self.o.line(text_bytes(channel) + b": " + text_bytes(data))

    # ------------------------------------------------------------ worker

    def worker(self, argv: List[str]) -> int:
        a = Args("worker", argv, ("--queue", "--concurrency", "--batch", "--max-jobs", "--grace",
                                  "--visibility-timeout", "--max-attempts", "--log-level"),
                 ("--burst",))
        if a.help:
            return self.help("worker")
        if len(a.pos) > 1:
            raise a.fail("unexpected argument '%s'", a.pos[1])
        if not a.pos:
            raise a.fail("MODULE:FUNCTION is needed")
        if not a.opts.get("--queue"):
            raise a.fail("--queue is needed")
        concurrency = a.count("--concurrency", 1)
        if not 1 <= concurrency <= 1024:
            raise a.fail("bad concurrency '%s' (1..1024)", a.opts["--concurrency"])
        batch = a.count("--batch", 0) or None
        if batch is not None and batch > 1000:
            raise a.fail("bad batch '%s' (1..1000)", a.opts["--batch"])
        max_jobs = a.count("--max-jobs", 0) or None
        max_attempts = a.count("--max-attempts", 0) or None
        grace = vt = None
        try:
            if "--grace" in a.opts:
                grace = float(a.opts["--grace"])
                if not grace >= 0:
                    raise ValueError
            if "--visibility-timeout" in a.opts:
                vt = float(a.opts["--visibility-timeout"])
                if not vt > 0:
                    raise ValueError
        except ValueError:
            raise a.fail("bad number of seconds") from None
        level_name = a.opts.get("--log-level", "INFO").upper()
        level = logging.getLevelName(level_name)
        if not isinstance(level, int):
            raise a.fail("bad log level '%s'", a.opts["--log-level"])
        if not logging.getLogger().handlers:
            logging.basicConfig(level=level, stream=sys.stderr,
                                format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        else:
            logging.getLogger().setLevel(level)
        logging.getLogger("reactis").setLevel(level)
        handler = load_handler(a.pos[0], a.usage)
        options: Dict[str, Any] = {}
        if vt is not None:
            options["visibility_timeout"] = vt
        if max_attempts is not None:
            options["max_attempts"] = max_attempts
        with Queue(a.opts["--queue"], self.url, **options) as q:
            q.work(handler, batch=batch, concurrency=concurrency,
                   burst=bool(a.opts.get("--burst")), max_jobs=max_jobs, grace=grace)
        return EX_OK

    def help(self, cmd: str) -> int:
        self.o.out.write(USAGE[cmd].encode())
        return EX_OK


def load_handler(spec: str, usage: str) -> Callable[..., Any]:
    """MODULE:FUNCTION (or MODULE.FUNCTION), attributes dotted after the
    colon. The current directory is importable, as for `python -m`."""
    if ":" in spec:
        mod_name, _, attr = spec.partition(":")
    else:
        mod_name, _, attr = spec.rpartition(".")
    if not mod_name or not attr:
        raise Usage(usage, "expected MODULE:FUNCTION, not '%s'" % spec)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(mod_name)
    except ImportError as e:
        if getattr(e, "name", None) and mod_name.startswith(e.name):
            raise Usage(usage, "cannot import module '%s': %s" % (mod_name, e)) from None
        raise
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise Usage(usage, "module '%s' has no attribute '%s'" % (mod_name, attr)) from None
    if not callable(obj):
        raise Usage(usage, "'%s' is not callable" % spec)
    return obj


class _StopOnSignals:
    """SIGINT/SIGTERM set a flag and wake a wait (main thread only)."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self.wake = wake
        self.stopped = False
        self.previous: Dict[int, Any] = {}

    def _on(self, signum: int, frame: Any) -> None:
        self.stopped = True
        self.wake()

    def __enter__(self) -> "_StopOnSignals":
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._on)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, h in self.previous.items():
            signal.signal(sig, h)


# ---------------------------------------------------------------- main

def split_global(argv: Sequence[str]) -> Tuple[Optional[str], bool, List[str]]:
    """Takes --url and --json out of argv wherever they are."""
    url, json_mode, rest = None, False, []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--json":
            json_mode = True
        elif a == "--url":
            if i + 1 >= len(argv):
                raise Usage(USAGE_MAIN, "--url needs a value")
            i += 1
            url = argv[i]
        elif a.startswith("--url="):
            url = a[6:]
        else:
            rest.append(a)
        i += 1
    return url, json_mode, rest


def main(argv: Optional[Sequence[str]] = None, stdout: Optional[IO[bytes]] = None,
         stderr: Optional[IO[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    out = stdout if stdout is not None else sys.stdout.buffer
    err = stderr if stderr is not None else sys.stderr
    try:
        url, json_mode, rest = split_global(argv)
        o = Output(json_mode, out, err)
        tool = Tool(url or default_url(), o)
        if not rest:
            err.write(USAGE_MAIN)
            return EX_USAGE
        cmd, args = rest[0], rest[1:]
        if cmd in ("--help", "-h", "help"):
            out.write(USAGE_MAIN.encode())
            return EX_OK
        if cmd in ("--version", "version"):
            o.line("reactis %s" % cimpl.version())
            return EX_OK
        commands: Dict[str, Callable[[List[str]], int]] = {
            "schedule": tool.schedule,
            "cancel": lambda a: tool.manage("cancel", a),
            "reschedule": lambda a: tool.manage("reschedule", a),
            "run-now": lambda a: tool.manage("run-now", a),
            "stats": tool.stats,
            "tail": tool.tail,
            "dead": tool.dead,
            "events": tool.events,
            "worker": tool.worker,
        }
        fn = commands.get(cmd)
        if fn is None:
            raise Usage(USAGE_MAIN, "unknown command '%s'" % cmd)
        try:
            return fn(args)
        except Error as e:
            return tool.fail(e)
    except Usage as u:
        err.write("reactis: %s\n%s" % (u, u.usage))
        return EX_USAGE
    except BrokenPipeError:
        # `... | head`: stop quietly. Later flushes (at exit) go nowhere.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return EX_OK
    finally:
        try:
            out.flush()
        except (BrokenPipeError, ValueError):
            pass
