#!/usr/bin/env python3
"""Schedules two SMS notifications: one for a SELLER in 10 s (correlation
key AAA) and one for a PUDO OPERATOR in 20 s (BBB), and logs when each is
due. worker.py receives them when they fall due.

    python examples/python/producer.py [--url redis://localhost:6379/0]

This is the classic Redis "delayed message" proof of concept (SET a key with
a TTL, listen for its `expired` notification), made reliable: the schedule
lives in Redis as data (a sorted set), not as a key waiting to expire, so

* nothing is lost when no worker is running when a message falls due: the
  next worker to start delivers the backlog, in due order;
* a message is delivered at least once: a worker that dies mid-message has
  it redelivered after the visibility timeout; a handler that fails has it
  retried with backoff, then dead-lettered;
* the correlation key is the message id, so running the producer twice does
  not schedule twice ("already scheduled"), and `cancel`/`reschedule` work
  by key: python -m reactis cancel sms AAA
* no CONFIG SET notify-keyspace-events is needed (managed Redis is fine), and
  Redis's lazy expiry cannot make a message late.
"""

import argparse
import json
import logging
import os
import sys

import reactis

log = logging.getLogger("producer")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=os.environ.get("REDIS_URL", "redis://localhost:6379/0"))
    ap.add_argument("--queue", default="sms")
    ap.add_argument("--seller-delay", type=float, default=10.0, help="seconds (10)")
    ap.add_argument("--pudo-delay", type=float, default=20.0, help="seconds (20)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")

    messages = [
        {"channel": "SELLER", "c_key": "AAA", "delay": args.seller_delay,
         "text": "Your parcel was handed over to the carrier."},
        {"channel": "PUDO_OPERATOR", "c_key": "BBB", "delay": args.pudo_delay,
         "text": "A parcel will be dropped off at your point today."},
    ]
    with reactis.Queue(args.queue, url=args.url) as q:
        for m in messages:
            payload = json.dumps({k: m[k] for k in ("channel", "c_key", "text")})
            s = q.schedule(payload, delay=m["delay"], id=m["c_key"])
            eta = s.due_at.astimezone().strftime("%H:%M:%S.%f")[:-3]
            if s.outcome == "exists":
                log.info("Already scheduled. channel: %s, c_key: %s, ETA: %s",
                         m["channel"], m["c_key"], eta)
            else:
                log.info("Scheduled. channel: %s, c_key: %s, ETA: %s (in %.0f s)",
                         m["channel"], m["c_key"], eta, m["delay"])
        if q.warning:
            log.warning("%s", q.warning)
    return 0


if __name__ == "__main__":
    sys.exit(main())
