# Thin wrapper: the build is CMake's; these targets install what a fresh Debian 12 machine lacks.
BUILD_DIR ?= build
ASAN_DIR  ?= build-sanitize
JOBS      ?= $(shell nproc)
CTEST_ARGS ?=

DEB_PACKAGES := cmake g++ make pkg-config libboost1.81-dev libboost-json1.81-dev \
                libboost-program-options1.81-dev libssl-dev catch2 socat openssl \
                ca-certificates systemd

.PHONY: all deps configure build test sanitize demo bench install clean

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

configure: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure $(CTEST_ARGS)

sanitize: deps
	cmake -S . -B $(ASAN_DIR) -DCMAKE_BUILD_TYPE=Debug -DAVR_WEBHOOKD_SANITIZE=ON -DAVR_WEBHOOKD_CONTAINER_TEST=OFF
	cmake --build $(ASAN_DIR) -j $(JOBS)
	cd $(ASAN_DIR) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure $(CTEST_ARGS)

# Relay throughput against a plain HTTP load generator, and the daemon's memory; prints a table.
BENCH_ARGS ?=
bench: configure
	cmake --build $(BUILD_DIR) -j $(JOBS) --target relay_bench avr-webhookd
	$(BUILD_DIR)/tests/bench/relay_bench $(BENCH_ARGS)

demo: build
	./tests/demo.sh $(BUILD_DIR)/avr-webhookd

install: build
	cmake --install $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR)
