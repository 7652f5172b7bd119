#!/usr/bin/env bash
# Installs the built library into a temporary prefix, then builds a consumer
# twice: with find_package(reactis) and with pkg-config, and runs both.
set -euo pipefail
build=$1; src=$(cd "$(dirname "$0")" && pwd)
prefix=$(mktemp -d); trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
cmake -S "$src" -B "$prefix/consumer" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/consumer" >/dev/null
LD_LIBRARY_PATH="$prefix/lib" "$prefix/consumer/consumer"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
pc=$(ls -d "$prefix"/lib*/pkgconfig | head -1); export PKG_CONFIG_PATH="$pc"
cc -o "$prefix/consumer_pc" "$src/consumer.c" $(pkg-config --cflags --libs reactis)
LD_LIBRARY_PATH="$(dirname "$pc")" "$prefix/consumer_pc"
echo "1 passed, 0 failed"
