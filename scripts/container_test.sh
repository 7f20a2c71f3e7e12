#!/usr/bin/env bash
# Builds the mpcd image from the Dockerfile with podman for real, runs it on loopback and checks it
# the way an orchestrator and a client would: the image's own HEALTHCHECK, a Solve answered through
# the published port (same answer as an in-process solve), /metrics, SIGTERM → drain → exit 0.
#
# Usage: scripts/container_test.sh [--variant=cpu|cuda] [--cuda-from-host] [--keep-image]
#   --variant=cuda     build the CUDA variant (needs CUDA_IMAGE, by default nvidia/cuda from Docker
#                      Hub, which this machine cannot reach; without a GPU the server falls back to
#                      the CPU backend, which is what this script then checks)
#   --cuda-from-host   import this machine's /usr/local/cuda as the CUDA_IMAGE (for --variant=cuda)
# Needs root (or rootless podman), podman, runc and debootstrap (apt-get install podman runc
# debootstrap). Not part of `make test`: the build compiles mpcd inside the image (minutes on 2 cores).
# With no container registry reachable, the bookworm base image is made with debootstrap from the
# Debian mirror apt uses (debootstrap, then podman import; docs/operations.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

variant=cpu
cuda_from_host=0
keep_image=0
for arg in "$@"; do
  case "$arg" in
    --variant=*) variant="${arg#--variant=}" ;;
    --cuda-from-host) cuda_from_host=1 ;;
    --keep-image) keep_image=1 ;;
    *) echo "container_test: unknown argument $arg" >&2; exit 2 ;;
  esac
done
case "$variant" in cpu|cuda) ;; *) echo "container_test: --variant must be cpu or cuda" >&2; exit 2 ;; esac

for tool in podman runc debootstrap curl; do
  command -v "$tool" >/dev/null || { echo "container_test: needs $tool (apt-get install podman runc debootstrap curl)" >&2; exit 2; }
done
export CONTAINERS_CONF="$PWD/deploy/containers.conf"

base_image=docker.io/library/debian:bookworm-slim
image="localhost/mpcd:test-$variant"
name="mpcd-container-test-$$"
work="$(mktemp -d /var/tmp/mpcd-container-test.XXXXXX)"
cleanup() {
  podman rm -f "$name" >/dev/null 2>&1 || true
  if [ "$keep_image" -eq 0 ]; then podman rmi -f "$image" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
step() { echo "== $*"; }
fail() { echo "container_test: FAIL: $*" >&2; exit 1; }

if ! podman image exists "$base_image"; then
  mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
  mirror="${mirror:-http://deb.debian.org/debian}"
  step "base image: debootstrap bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log"; fail "debootstrap"; }
  tar -C "$work/rootfs" -c . | podman import - "$base_image" >/dev/null
  rm -rf "$work/rootfs"
fi

build_args=(--build-arg "VARIANT=$variant"
            --build-arg "MPCD_REVISION=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)")
if [ "$variant" = cuda ] && [ "$cuda_from_host" -eq 1 ]; then
  [ -x /usr/local/cuda/bin/nvcc ] || fail "--cuda-from-host: no /usr/local/cuda/bin/nvcc here"
  step "CUDA image from this machine's /usr/local/cuda"
  cuda_dir="$(readlink -f /usr/local/cuda)"
  tar -C / -c "${cuda_dir#/}" usr/local/cuda | podman import - localhost/cuda-toolkit:host >/dev/null
  build_args+=(--build-arg CUDA_IMAGE=localhost/cuda-toolkit:host)
fi

step "podman build ($variant)"
start=$(date +%s)
podman build --format=docker --network=host --pull=never "${build_args[@]}" -f Dockerfile \
  -t "$image" . >"$work/build.log" 2>&1 || { tail -40 "$work/build.log"; fail "podman build"; }
build_seconds=$(( $(date +%s) - start ))
size_bytes="$(podman image inspect --format '{{.Size}}' "$image")"
echo "built $image in ${build_seconds} s, $(( size_bytes / 1000000 )) MB"

step "image: unprivileged user, health check, only runtime libraries"
user="$(podman image inspect --format '{{.Config.User}}' "$image")"
[ "$user" = "10001:10001" ] || fail "image user is '$user', expected 10001:10001"
healthcheck="$(podman image inspect --format '{{json .Config.Healthcheck}}' "$image")"
echo "$healthcheck" | grep -q 'mpcctl health' || fail "no HEALTHCHECK in the image: $healthcheck"
in_image() { podman run --rm --no-healthcheck --network=host --entrypoint /bin/sh "$image" -c "$1"; }
missing="$(in_image 'ldd /usr/local/bin/mpcd /usr/local/bin/mpcctl | grep "not found" || true')"
[ -z "$missing" ] || fail "libraries missing in the image: $missing"
if in_image 'command -v g++ || command -v cmake || test -e /usr/include/grpcpp'; then
  fail "build tools or headers leaked into the runtime image"
fi
[ "$(in_image 'id -u')" = 10001 ] || fail "container does not run as uid 10001"

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port="$(free_port)"
metrics_port="$(free_port)"
step "run on 127.0.0.1:$port (metrics :$metrics_port)"
# Without systemd podman cannot schedule the health check (it says so on stderr, kept in
# podman.log); `podman healthcheck run` below runs the image's HEALTHCHECK command itself.
podman run -d --name "$name" --network=host -e MPCD_PORT="$port" "$image" \
  --host=127.0.0.1 --metrics_port="$metrics_port" >/dev/null 2>>"$work/podman.log"
healthy=0
for _ in $(seq 1 60); do
  if podman healthcheck run "$name" >/dev/null 2>&1; then healthy=1; break; fi
  podman container exists "$name" && [ "$(podman inspect --format '{{.State.Running}}' "$name")" = true ] \
    || { podman logs "$name" >&2 || true; fail "container exited"; }
  sleep 0.5
done
[ "$healthy" -eq 1 ] || { podman logs "$name" >&2; fail "HEALTHCHECK never passed"; }
echo "HEALTHCHECK (mpcctl health inside the container): healthy"

step "Solve through the port, compared with an in-process solve"
mpcctl_in_image() {
  podman run --rm -i --no-healthcheck --network=host --entrypoint /usr/local/bin/mpcctl "$image" "$@"
}
mpcctl_in_image solve --target="127.0.0.1:$port" --request=- <examples/cartpole_swingup.json >"$work/remote.json" \
  || fail "remote solve"
mpcctl_in_image solve --local --request=- <examples/cartpole_swingup.json >"$work/local.json" \
  || fail "local solve"
/usr/bin/python3 - "$work/remote.json" "$work/local.json" <<'EOF' || fail "answers differ"
import json, sys
remote, local = (json.load(open(p)) for p in sys.argv[1:3])
assert len(remote["solutions"]) == len(local["solutions"]) > 0
for r, l in zip(remote["solutions"], local["solutions"]):
    # Same binary, same problem: the iterates are bitwise the same alone or in any batch.
    assert r["u"]["data"] == l["u"]["data"], "u differs"
    assert r["cost"] == l["cost"], (r["cost"], l["cost"])
print("remote solve == local solve: %d problems, costs %s" %
      (len(remote["solutions"]), [round(s["cost"], 6) for s in remote["solutions"]]))
EOF
if [ -x build/bin/mpcctl ]; then
  build/bin/mpcctl health --target="127.0.0.1:$port" >/dev/null || fail "host mpcctl health"
  echo "host build/bin/mpcctl health: SERVING"
fi

step "/metrics"
curl -sf "http://127.0.0.1:$metrics_port/metrics" >"$work/metrics.txt" || fail "scrape /metrics"
grep -q 'mpcd_requests_total{code="OK",method="Solve"} [1-9]' "$work/metrics.txt" \
  || fail "/metrics has no answered Solve"
echo "mpcd_requests_total counts the Solve"

step "podman stop (SIGTERM): drain, exit 0"
podman stop --time 40 "$name" >/dev/null 2>>"$work/podman.log"
exit_code="$(podman inspect --format '{{.State.ExitCode}}' "$name")"
podman logs "$name" >"$work/server.log" 2>&1
[ "$exit_code" = 0 ] || { cat "$work/server.log"; fail "exit code $exit_code after SIGTERM"; }
grep -q 'SIGTERM: draining' "$work/server.log" || { cat "$work/server.log"; fail "no drain on SIGTERM"; }
echo "exit 0 after draining"

echo "container_test: PASS ($variant): build ${build_seconds} s, image $(( size_bytes / 1000000 )) MB"
