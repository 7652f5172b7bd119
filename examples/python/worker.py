#!/usr/bin/env python3
"""Receives the SMS notifications producer.py schedules, when they fall due.

    python examples/python/worker.py [--url redis://localhost:6379/0]

or, with nothing but the package (this is the Procfile line):

    cd examples/python && python -m reactis worker worker:handle --queue sms

`handle(job)` is the whole worker: returning acks the message; raising
retries it with exponential backoff, and after max_attempts it goes to the
dead letters (python -m reactis dead list sms). SIGTERM or Ctrl-C finishes
the message in hand and exits 0. Stop the worker, let messages fall due,
start it again: they are all delivered, in due order.
"""

import argparse
import json
import logging
import os
import sys

import reactis

log = logging.getLogger("worker")


def handle(job: reactis.Job) -> None:
    msg = json.loads(job.payload)
    late = (job.delivered_at - job.due_at).total_seconds()
    log.info("Received. channel: %s, c_key: %s", msg["channel"], msg["c_key"])
    log.debug("text %r, attempt %d, %.3f s after due", msg.get("text"), job.attempt, late)
    # Send the SMS here. An exception (the SMS gateway is down) retries it.


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=os.environ.get("REDIS_URL", "redis://localhost:6379/0"))
    ap.add_argument("--queue", default="sms")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with reactis.Queue(args.queue, url=args.url, visibility_timeout=30, max_attempts=10) as q:
        q.work(handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
