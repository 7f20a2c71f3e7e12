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
#   make check-tsan        clang build with TSan in build-tsan/ of the gRPC-free tests (solver, thread
#                          pool, dynamic batcher, call tracker) against an Abseil compiled in that tree
#                          with TSan from Debian's sources (scripts/fetch_abseil_source.sh downloads
#                          them), then those tests; see docs/robustness.md §5
#   make check-robustness  the hostile client's heavy scenarios against the built mpcd (2,000
#                          preface-only connections at a low descriptor limit, RSS after many
#                          large shapes; a few minutes): docs/robustness.md §7
#   make format-check      every tracked C++/CUDA file is as clang-format (.clang-format) writes
#                          it; `make format` rewrites them so
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
TSAN_BUILD_DIR ?= build-tsan
ABSL_SOURCE_DIR ?= $(CURDIR)/.cache/abseil-20220623.1-1+deb12u2
# Every test binary that links neither gRPC nor protobuf (their Debian builds are not instrumented),
# except no_allocation_test: its counting operator new/delete clash with TSan's own.
TSAN_TESTS = model_test reference_test kkt_test ilqr_test cpu_backend_test \
             implicit_backward_test problem_validation_test host_emulation_test \
             backward_emulation_test batching_policy_test dynamic_batcher_test call_tracker_test

.PHONY: all deps configure build test run bench clean configure-sanitizers check-sanitizers \
        check-fuzz configure-tsan check-tsan check-robustness format format-check

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

# Every report also goes to a file under SANITIZER_REPORTS (log_path; named by binary and pid), and
# any such file with content fails the target: a report from an mpcd that a Python test stops
# without checking its exit status, or one cut short by the process exiting, would otherwise pass
# unseen. An empty file holds no report (the runtime opens its log before it knows it has anything
# to write: docs/robustness.md §5): listed, not a failure.
SANITIZER_REPORTS = $(abspath $(SANITIZER_BUILD_DIR))/sanitizer-reports
# The instrumented solver runs 30-100 times slower than Release; the process tests divide work sized
# for a wall time by this (MPCD_TEST_SLOWDOWN; docs/robustness.md §5).
SANITIZER_SLOWDOWN ?= 10
check-sanitizers: configure-sanitizers
	cmake --build $(SANITIZER_BUILD_DIR) -j$(JOBS)
	rm -rf $(SANITIZER_REPORTS) && mkdir -p $(SANITIZER_REPORTS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:log_exe_name=1:log_path=$(SANITIZER_REPORTS)/asan \
	  UBSAN_OPTIONS=print_stacktrace=1:log_exe_name=1:log_path=$(SANITIZER_REPORTS)/ubsan \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitizers/lsan.supp:print_suppressions=0 \
	  MPCD_TEST_SLOWDOWN=$(SANITIZER_SLOWDOWN) MPCD_TEST_SANITIZED=1 \
	  ctest --test-dir $(SANITIZER_BUILD_DIR) --output-on-failure -j$(JOBS); status=$$?; \
	empty=$$(find $(SANITIZER_REPORTS) -type f -empty); reports=$$(find $(SANITIZER_REPORTS) -type f ! -empty); \
	if [ -n "$$empty" ]; then \
	  echo "check-sanitizers: empty report files (a log opened, nothing written; not reports):" $$empty; \
	fi; \
	if [ -n "$$reports" ]; then \
	  echo "check-sanitizers: sanitizer reports in $(SANITIZER_REPORTS):"; \
	  tail -n +1 $$reports; exit 1; \
	fi; exit $$status

check-fuzz: configure-sanitizers
	cmake --build $(SANITIZER_BUILD_DIR) -j$(JOBS) --target run-fuzzers

# TSan needs every synchronisation it should see to be instrumented: absl::Mutex is, because this
# tree builds Abseil from source (MPCD_ABSL_SOURCE_DIR) with the same flags; libstdc++'s and glibc's
# primitives are intercepted by TSan itself. A report fails the test (TSan exits with 66).
configure-tsan: deps
	scripts/fetch_abseil_source.sh $(ABSL_SOURCE_DIR)
	CC=clang CXX=clang++ cmake -S . -B $(TSAN_BUILD_DIR) -G Ninja \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only" \
	  -DMPCD_SANITIZE=thread -DMPCD_ABSL_SOURCE_DIR=$(ABSL_SOURCE_DIR) \
	  -DMPCD_BUILD_BENCHMARKS=OFF -DMPCD_WITH_CUDA=OFF $(CMAKE_ARGS)

check-tsan: configure-tsan
	cmake --build $(TSAN_BUILD_DIR) -j$(JOBS) --target $(TSAN_TESTS)
	TSAN_OPTIONS=second_deadlock_stack=1 ctest --test-dir $(TSAN_BUILD_DIR) --output-on-failure \
	  -j$(JOBS) --timeout 300 -L '^($(shell echo $(TSAN_TESTS) | tr ' ' '|'))$$'

check-robustness: build
	cmake --build $(BUILD_DIR) --target check-robustness

clean:
	rm -rf $(BUILD_DIR)

# The C++ and CUDA sources git tracks, formatted by the repository's .clang-format (clang-format 14,
# Debian's). format-check changes nothing and fails on the first file that differs.
FORMAT_FILES = $(shell git ls-files '*.cc' '*.h' '*.cu' '*.cuh')
format-check:
	clang-format --dry-run -Werror $(FORMAT_FILES)

format:
	clang-format -i $(FORMAT_FILES)
