#!/usr/bin/env python3
"""A local cache in each process, invalidated across processes.

Run two (or more) of these; each reads commands on stdin:

    python examples/python/cache_invalidation.py A
    python examples/python/cache_invalidation.py B

    get 7          -> "product 7 = v1 (from redis)" the first time,
                      "product 7 = v1 (cached)" afterwards
    set 7 v2       -> writes product:7 in Redis and tells every process

A write sets the key product:{id} and publishes its id on
invalidate:product:{id}; every process routes that channel's template to a
handler that drops its local copy (and says so: "B: invalidated product
7"), so its next get reads the new value from Redis.

Pub/sub is at-most-once: a process whose link broke may have missed
invalidations. The subscriber says so with a gap event, and this cache then
drops everything, which is the only safe answer.
"""

import os
import sys
import threading

import reactis

KEY = reactis.Template("product:{id}")
CHANNEL = reactis.Template("invalidate:product:{id}")


def main() -> int:
    name = sys.argv[1] if len(sys.argv) > 1 else "cache"
    url = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
    client = reactis.Client(url)
    cache: dict = {}
    lock = threading.Lock()
    sub = reactis.Subscriber(url)

    @sub.on(CHANNEL)
    def invalidate(msg: reactis.Message, caps: dict) -> None:
        pid = caps["id"].decode()
        if msg.data == name.encode():
            return  # our own write: our copy is the new value
        with lock:
            had = cache.pop(pid, None) is not None
        print("%s: invalidated product %s%s" % (name, pid, "" if had else " (not cached)"),
              flush=True)

    def gap(msg: reactis.Message) -> None:
        with lock:
            cache.clear()
        print("%s: reconnected, cache cleared" % name, flush=True)

    listener = threading.Thread(target=sub.run, kwargs={"on_gap": gap}, daemon=True)
    listener.start()
    print("%s: ready" % name, flush=True)

    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "get" and len(words) == 2:
            pid = words[1]
            with lock:
                value = cache.get(pid)
            if value is not None:
                print("product %s = %s (cached)" % (pid, value), flush=True)
                continue
            raw = client.command("GET", KEY.format(id=pid))
            value = raw.decode() if raw is not None else "(none)"
            with lock:
                cache[pid] = value
            print("product %s = %s (from redis)" % (pid, value), flush=True)
        elif words[0] == "set" and len(words) == 3:
            pid, value = words[1], words[2]
            client.command("SET", KEY.format(id=pid), value)
            with lock:
                cache[pid] = value
            n = client.publish(CHANNEL.format(id=pid), name)
            print("product %s set, %d process(es) told" % (pid, n), flush=True)
        else:
            print("commands: get ID | set ID VALUE", flush=True)
    sub.close()
    listener.join(timeout=2)
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
