#!/usr/bin/env bash
# One problem's answer must not depend on where the heap puts a worker's buffers (the dense
# kernels vectorise by address): every number hexfloat_dump prints for the CPU backend (solves,
# backward passes in every mode, Jacobians; shapes up to n = 32) is the same, bit for bit, under
# three different malloc configurations.
set -euo pipefail
dump=$1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$dump" cpu > "$out/default.txt"
GLIBC_TUNABLES=glibc.malloc.tcache_count=0 "$dump" cpu > "$out/no_tcache.txt"
GLIBC_TUNABLES=glibc.malloc.tcache_count=0:glibc.malloc.mmap_threshold=4096 MALLOC_PERTURB_=165 \
  "$dump" cpu > "$out/mmap.txt"
test "$(grep -c . "$out/default.txt")" -gt 4000
cmp "$out/default.txt" "$out/no_tcache.txt"
cmp "$out/default.txt" "$out/mmap.txt"
echo "identical under 3 heap configurations: $(grep -c . "$out/default.txt") lines"
