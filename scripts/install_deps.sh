#!/usr/bin/env bash
# Installs the Debian packages mpcd needs to build and test, skipping what is already present.
# Usage: scripts/install_deps.sh [--extras]   (--extras adds tools used by optional checks)
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config make clang-format
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libeigen3-dev prometheus-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev
  grpc-proto python3-grpcio python3-protobuf python3-numpy curl nlohmann-json3-dev
  python3-torch python3-matplotlib  # mpcd.torch and its tests; the examples' plots
  python3-cvxopt  # the dense QP the state-constraint tests compare with
  # the tutorial notebook (examples/tutorial.ipynb), made and run headless in the Tutorial test
  python3-nbformat python3-nbconvert jupyter-nbconvert python3-ipykernel
  # the Go client's test (client/go), built offline against Debian's Go packages; protobuf 1-5
  # replaces the default 1-3, whose runtime cannot load protoc-gen-go 1.28's output
  golang-go golang-google-grpc-dev golang-google-protobuf-dev protoc-gen-go protoc-gen-go-grpc
  golang-github-golang-protobuf-1-5-dev
  libonnx-dev python3-onnx  # dynamics graphs: mpcd parses ONNX with libonnx; tests and mpcd.torch export
  # tests/deploy: nginx as a gRPC proxy, yamllint for the manifests, promtool (in prometheus)
  # for the scrape config and alert rules
  nginx-light yamllint python3-yaml prometheus
  libssl-dev openssl  # TLS: PEM checks in mpcd; the tests' certificates
  # make check-tsan (CI runs it): clang with TSan's runtime; scripts/fetch_abseil_source.sh unpacks
  # and patches Debian's Abseil sources
  clang libclang-rt-14-dev patch xz-utils
)
# Optional checks that skip themselves when the tool is missing: prometheus ships promtool, which
# lints the /metrics exposition in tests/server/mpcd_process_test.py (about 20 MB to download).
extras=(prometheus)
# The Node client's test (client/node) needs node and npm; keep a node that is already installed
# (e.g. NodeSource's, which bundles npm and conflicts with Debian's npm package).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  packages+=(nodejs npm)
fi
if [ "${1:-}" = "--extras" ]; then
  packages+=("${extras[@]}")
fi

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install_deps: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
apt_opts=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
"${sudo_cmd[@]}" apt-get "${apt_opts[@]}" update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get "${apt_opts[@]}" install -y -qq \
  --no-install-recommends "${missing[@]}"
