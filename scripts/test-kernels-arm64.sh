#!/usr/bin/env bash
# Runs pkg/kernels' tests built for linux/arm64 under qemu user-mode
# emulation, so the NEON paths are checked against the pure-Go ones on an
# x86 machine (forEachLevel runs both). Emulation says nothing about speed.
# Skips with a warning when qemu-aarch64 or the arm64 C loader is missing
# (.ci/deps installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64 || true)
sysroot=/usr/aarch64-linux-gnu
if [ -z "$qemu" ]; then
	echo "test-kernels-arm64: WARNING: qemu-aarch64 not found; arm64 kernels tests SKIPPED" >&2
	exit 0
fi
if [ ! -e "$sysroot/lib/ld-linux-aarch64.so.1" ]; then
	echo "test-kernels-arm64: WARNING: $sysroot/lib/ld-linux-aarch64.so.1 missing (libc6-arm64-cross); arm64 kernels tests SKIPPED" >&2
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
GOARCH=arm64 CGO_ENABLED=0 go test -c -o "$tmp/kernels.arm64" ./pkg/kernels
"$qemu" -L "$sysroot" "$tmp/kernels.arm64" -test.run .
