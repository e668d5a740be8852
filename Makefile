# Thin wrapper: the build is CMake's; these targets install what a fresh Debian 12 machine lacks.
BUILD_DIR ?= build
ASAN_DIR  ?= build-sanitize
JOBS      ?= $(shell nproc)
CTEST_ARGS ?=

DEB_PACKAGES := cmake g++ make pkg-config libboost1.81-dev libboost-json1.81-dev \
                libboost-program-options1.81-dev libssl-dev catch2 socat openssl \
                ca-certificates systemd ccache nats-server libnats-dev
FUZZ_PACKAGES := clang-14 libclang-rt-14-dev
# For make test and make sanitize only (make demo stays light): the status page's test opens it in
# headless Chromium; the dashboard's test runs its PromQL against a real Prometheus.
TEST_PACKAGES := chromium prometheus

# ccache makes rebuilds of a fresh clone (CI, worktrees) cheap; paths below the parent folder are
# hashed relative to it, and the precompiled headers are accepted as ccache's manual describes.
CCACHE := $(shell command -v ccache 2>/dev/null)
export CCACHE_BASEDIR ?= $(abspath ..)
export CCACHE_SLOPPINESS ?= pch_defines,time_macros,include_file_mtime,include_file_ctime
# Debug info names the build folder; without this a clone elsewhere (CI, worktrees) never hits.
export CCACHE_NOHASHDIR ?= 1
CMAKE_LAUNCHER = $(if $(CCACHE),-DCMAKE_CXX_COMPILER_LAUNCHER=$(CCACHE))

.PHONY: all deps test-deps configure build test sanitize fuzz demo bench soak install clean format format-check format-deps

all: build

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Debian's prometheus package starts a server on *:9090 when it is installed; the tests run their own
# on loopback, so a service this target brought in is stopped and disabled again.
test-deps:
	@had_prometheus=$$(dpkg-query -W -f='$${Status}' prometheus 2>/dev/null | grep -c 'install ok installed'); \
	$(MAKE) --no-print-directory deps DEB_PACKAGES="$(TEST_PACKAGES)" || exit 1; \
	if [ "$$had_prometheus" = 0 ] && [ -d /run/systemd/system ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO systemctl disable --now prometheus >/dev/null 2>&1 && \
	    echo "test-deps: stopped and disabled the prometheus service the package started"; \
	fi; true

configure: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_LAUNCHER)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build test-deps
	cd $(BUILD_DIR) && ctest --output-on-failure $(CTEST_ARGS)

sanitize: deps test-deps
	cmake -S . -B $(ASAN_DIR) $(CMAKE_LAUNCHER) -DCMAKE_BUILD_TYPE=Debug -DAVR_WEBHOOKD_SANITIZE=ON -DAVR_WEBHOOKD_CONTAINER_TEST=OFF
	cmake --build $(ASAN_DIR) -j $(JOBS)
	cd $(ASAN_DIR) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure $(CTEST_ARGS)

# Relay throughput against wrk on the same nginx receiver, CPU and memory per event, latency;
# prints a table (tests/bench/README.md). The profilers are for the README's profiling recipes.
BENCH_ARGS ?=
BENCH_PACKAGES := wrk nginx linux-perf valgrind
bench: configure
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(BENCH_PACKAGES)"
	cmake --build $(BUILD_DIR) -j $(JOBS) --target relay_bench avr-webhookd
	$(BUILD_DIR)/tests/bench/relay_bench $(BENCH_ARGS)

# Formatting: .clang-format is the project's style; CI fails on any file that differs from it.
FORMAT_FILES = $(shell git ls-files '*.cpp' '*.hpp')
format-deps:
	@command -v clang-format-14 >/dev/null || \
	  { if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends clang-format-14; }
format: format-deps
	clang-format-14 -i $(FORMAT_FILES)
format-check: format-deps
	clang-format-14 --dry-run --Werror $(FORMAT_FILES)

# Every libFuzzer target for FUZZ_SECONDS each (clang 14, ASan + UBSan); new corpus entries and
# crash artifacts stay in $(FUZZ_DIR). A crash fails the target: save its input under
# tests/fuzz/corpus/<target>/ so that make test replays it from then on.
FUZZ_DIR ?= build-fuzz
FUZZ_SECONDS ?= 60
fuzz: deps
	@command -v clang++-14 >/dev/null && dpkg-query -W -f='$${Status}\n' libclang-rt-14-dev 2>/dev/null | grep -q 'install ok installed' || \
	  { if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(FUZZ_PACKAGES); }
	CC=clang-14 CXX=clang++-14 cmake -S . -B $(FUZZ_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAVR_WEBHOOKD_FUZZ=ON $(CMAKE_LAUNCHER)
	cmake --build $(FUZZ_DIR) -j $(JOBS)
	tests/fuzz/run.sh $(FUZZ_DIR)/tests/fuzz $(FUZZ_SECONDS)

# Hours-long stability under steady load with receiver faults; prints RSS, fds and queue depth
# each minute and fails if an acknowledged event is lost or RSS/fds do not come back.
SOAK_MINUTES ?= 10
SOAK_ARGS ?=
soak: configure
	cmake --build $(BUILD_DIR) -j $(JOBS) --target soak avr-webhookd
	$(BUILD_DIR)/tests/bench/soak --minutes $(SOAK_MINUTES) $(SOAK_ARGS)

# Only the daemon's binary is built here; the test suites are built by make test.
demo: configure
	cmake --build $(BUILD_DIR) -j $(JOBS) --target avr-webhookd
	./tests/demo.sh $(BUILD_DIR)/avr-webhookd

install: build
	cmake --install $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(FUZZ_DIR)
