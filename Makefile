# Entry points for people and CI. Everything real lives in CMake; this file only sequences it.
#   make build   install missing Debian packages, configure and build (build/)
#   make test    build, then run every test (GPU tests skip themselves without a device)
#   make run     build, then serve: mpcd on localhost:50051, metrics on :9464 (Ctrl-C drains and
#                stops); from a second terminal:
#                build/bin/mpcctl solve --target=localhost:50051 --request=examples/cartpole_swingup.json
#   make bench   build, then run the benchmarks (build/bin/mpcd_*bench)
#   make check-sanitizers  clang build with ASan+UBSan in build-asan/, then every test in it
#   make check-fuzz        the libFuzzer targets (same tree), each run FUZZ_SECONDS from the seed
#                          corpus in tests/fuzz/corpus/ (docs/robustness.md). Neither is part of
#                          `make test`: the instrumented build is slow (see docs/robustness.md)
#   make clean   remove build/
# Variables: JOBS (parallel jobs, default 2: this machine has 2 cores), BUILD_DIR, BUILD_TYPE,
# CMAKE_ARGS (extra configure arguments), MPCD_FLAGS (extra mpcd flags for `make run`).

JOBS ?= 2
BUILD_DIR ?= build
BUILD_TYPE ?= Release
CMAKE_ARGS ?=
MPCD_FLAGS ?=
SANITIZER_BUILD_DIR ?= build-asan
FUZZ_SECONDS ?= 60

.PHONY: all deps configure build test run bench clean configure-sanitizers check-sanitizers \
        check-fuzz

all: build

deps:
	scripts/install_deps.sh

configure: deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)

build: configure
	cmake --build $(BUILD_DIR) -j$(JOBS)

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j$(JOBS)

run: build
	$(BUILD_DIR)/bin/mpcd --host=127.0.0.1 --port=50051 --metrics_port=9464 --backend=auto $(MPCD_FLAGS)

bench: build
	@found=0; for b in $(BUILD_DIR)/bin/mpcd_*bench; do \
	  [ -x "$$b" ] || continue; found=1; echo "== $$b"; "$$b" || exit $$?; \
	done; \
	if [ $$found -eq 0 ]; then echo "no benchmarks built (needs libbenchmark-dev)"; fi

# One clang tree serves both checks: every target with ASan+UBSan, plus libFuzzer's coverage
# instrumentation (harmless for the tests) so the fuzzers build in it too.
configure-sanitizers: deps
	CC=clang CXX=clang++ cmake -S . -B $(SANITIZER_BUILD_DIR) -G Ninja \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only" \
	  -DMPCD_SANITIZE=address,undefined -DMPCD_FUZZ=ON -DMPCD_FUZZ_SECONDS=$(FUZZ_SECONDS) \
	  -DMPCD_BUILD_BENCHMARKS=OFF -DMPCD_WITH_CUDA=OFF $(CMAKE_ARGS)

check-sanitizers: configure-sanitizers
	cmake --build $(SANITIZER_BUILD_DIR) -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir $(SANITIZER_BUILD_DIR) --output-on-failure -j$(JOBS)

check-fuzz: configure-sanitizers
	cmake --build $(SANITIZER_BUILD_DIR) -j$(JOBS) --target run-fuzzers

clean:
	rm -rf $(BUILD_DIR)
