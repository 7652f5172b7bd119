#!/usr/bin/env bash
# The main job: build reactis and run the demos: parsed keyspace events
# (examples/c/expired_demo.c), then the reliable delayed queue delivering
# messages that fell due while no worker ran (examples/c/queue_demo.c). Without REDIS_URL it starts a
# throwaway redis-server on a free loopback port and removes it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
tmp=""
cleanup() { if [ -n "$tmp" ]; then redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$tmp"; fi; }
trap cleanup EXIT
if [ -z "${REDIS_URL:-}" ]; then
  tmp=$(mktemp -d)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
               --daemonize yes --logfile "$tmp/redis.log" --pidfile "$tmp/redis.pid"
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  export REDIS_URL="redis://127.0.0.1:$port"
  echo "demo: started a throwaway redis-server at $REDIS_URL"
fi
./build/examples/expired_demo "$REDIS_URL"
echo
./build/examples/queue_demo "$REDIS_URL"
