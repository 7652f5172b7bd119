#!/usr/bin/env python3
"""Chat rooms on pub/sub, routed by a channel template.

    python examples/python/chat.py listen                    # every room
    python examples/python/chat.py say lobby alice "hello"   # one message

Messages go to the channel chat:{room} (the name made with
reactis.Template("chat:{room}").format(room=...)); the listener subscribes
to the template once (PSUBSCRIBE chat:*) and each message reaches the
handler with its captures, so the room needs no parsing:

    [lobby] alice: hello

Pub/sub is at-most-once: a listener that is down misses messages, and after
a reconnect it prints a notice of the window that may have been missed.
"""

import argparse
import json
import os
import signal
import sys

import reactis

ROOM = reactis.Template("chat:{room}")


def say(args: argparse.Namespace) -> int:
    with reactis.Client(args.url) as c:
        n = c.publish(ROOM.format(room=args.room), json.dumps({"user": args.user, "text": args.text}))
    print("sent to %d listener(s)" % n, flush=True)
    return 0


def listen(args: argparse.Namespace) -> int:
    sub = reactis.Subscriber(args.url)

    @sub.on(ROOM)
    def said(msg: reactis.Message, caps: dict) -> None:
        m = json.loads(msg.data)
        print("[%s] %s: %s" % (caps["room"].decode(), m["user"], m["text"]), flush=True)

    def gap(msg: reactis.Message) -> None:
        print("(reconnected: messages of the last %.1f s may be missing)"
              % ((msg.gap_end_ms - msg.gap_start_ms) / 1000.0), flush=True)

    signal.signal(signal.SIGTERM, lambda *_: sub.wakeup())
    print("listening on %s" % ROOM.glob.decode(), flush=True)
    try:
        sub.run(on_gap=gap)
    except KeyboardInterrupt:
        pass
    finally:
        sub.close()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=os.environ.get("REDIS_URL", "redis://localhost:6379/0"))
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("say")
    s.add_argument("room")
    s.add_argument("user")
    s.add_argument("text")
    sub.add_parser("listen")
    args = ap.parse_args()
    return say(args) if args.mode == "say" else listen(args)


if __name__ == "__main__":
    sys.exit(main())
