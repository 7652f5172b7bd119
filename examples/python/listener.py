#!/usr/bin/env python3
"""Prints keys as Redis expires them, using keyspace notifications.

    python examples/python/listener.py redis://localhost:6379/0

then, in another shell:  redis-cli SET session:42 x PX 1500

Notifications are hints, not a schedule: `expired` fires when Redis deletes
the key, which can lag far behind its TTL on a busy server; pub/sub is
at-most-once, and a "gap" tells you when the link was down so you can
re-read whatever state you keep. Ctrl-C or SIGTERM stops it at once.
"""

import argparse
import logging
import signal
import sys

import reactis


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url", nargs="?", default="redis://localhost:6379/0")
    ap.add_argument("--db", type=int, default=None,
                    help="database to watch (default: the URL's, else 0)")
    ap.add_argument("--no-config", action="store_true",
                    help="do not try CONFIG SET (managed Redis: enable 'Ex' yourself)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    db = args.db
    if db is None:
        tail = args.url.split("?")[0].rsplit("/", 1)
        db = int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else 0

    if not args.no_config:
        try:
            flags = reactis.enable_keyspace_events(args.url, "Ex")
            logging.info("notify-keyspace-events is now %r", flags)
        except reactis.ConfigForbiddenError as e:
            logging.warning("%s", e)

    with reactis.Subscriber(args.url) as sub:
        # SIGTERM (a Procfile shutdown) ends listen() cleanly; Ctrl-C raises
        # KeyboardInterrupt out of it.
        signal.signal(signal.SIGTERM, lambda signum, frame: sub.wakeup())
        channel = "__keyevent@%d__:expired" % db
        sub.subscribe(channel)
        logging.info("listening on %s (%s)", channel, sub)
        try:
            for msg in sub.listen():
                if msg.kind == "gap":
                    logging.warning("link was down %.1f s: expirations in that window were missed",
                                    (msg.gap_end_ms - msg.gap_start_ms) / 1000)
                    continue
                ev = msg.key_event
                if ev is None:
                    continue
                print("expired db=%d key=%r" % (ev.db, ev.key), flush=True)
        except KeyboardInterrupt:
            pass
    logging.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
