#!/usr/bin/env python3
"""Devices send heartbeats; a watcher reports the ones that went silent.

    python examples/python/heartbeat.py watch                 # the watcher
    python examples/python/heartbeat.py device 100002         # one device
    python examples/python/heartbeat.py device 100003 --beats 5   # dies after 5

Every heartbeat is one touch of the device's timer: its deadline moves
--ttl seconds ahead and its payload (the last reading) is kept with it.
When a device stops, its deadline passes and the watcher prints

    device 100002 offline, last payload {"seq": 5, "battery": 71}

Timers fire at least once and on time, with nothing but the timer set in
Redis: stop the watcher, let a device die, start the watcher again, and it
still reports that device (late, but it does). A device that keeps beating
is never reported, however many watchers run. No keyspace notifications,
no CONFIG, no polling.
"""

import argparse
import json
import os
import sys
import time

import reactis


def device(args: argparse.Namespace) -> int:
    timers = reactis.Timers(args.timers, url=args.url)
    seq = 0
    try:
        while args.beats is None or seq < args.beats:
            seq += 1
            payload = json.dumps({"seq": seq, "battery": 100 - seq % 100,
                                  "at": round(time.time(), 3)})
            if timers.touch(args.id, ttl=args.ttl, data=payload):
                print("device %s online" % args.id, flush=True)
            time.sleep(args.every)
    except KeyboardInterrupt:
        pass
    print("device %s stops beating" % args.id, flush=True)
    timers.close()
    return 0


def watch(args: argparse.Namespace) -> int:
    timers = reactis.Timers(args.timers, url=args.url, visibility_timeout=args.ttl * 10)

    def offline(device_id: bytes, data: bytes) -> None:
        print("device %s offline, last payload %s"
              % (device_id.decode(), data.decode("utf-8", "replace")), flush=True)

    print("watching %s" % args.timers, flush=True)
    try:
        timers.watch(offline)  # until Ctrl-C / SIGTERM
    except KeyboardInterrupt:
        pass
    finally:
        timers.close()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=os.environ.get("REDIS_URL", "redis://localhost:6379/0"))
    ap.add_argument("--timers", default="heartbeats", help="the timer set")
    ap.add_argument("--ttl", type=float, default=5.0, help="seconds of silence before offline")
    sub = ap.add_subparsers(dest="mode", required=True)
    d = sub.add_parser("device", help="send heartbeats")
    d.add_argument("id")
    d.add_argument("--every", type=float, default=1.0, help="seconds between heartbeats")
    d.add_argument("--beats", type=int, default=None, help="stop after this many")
    sub.add_parser("watch", help="report devices that went silent")
    args = ap.parse_args()
    # SIGTERM (a Procfile's stop) ends the watcher as Ctrl-C does.
    import signal

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return device(args) if args.mode == "device" else watch(args)


if __name__ == "__main__":
    sys.exit(main())
