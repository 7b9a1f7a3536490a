# The two commands a new user needs: `make run` and `make test` (see README.md).
# No "Entering directory" chatter from the CMake-generated makefiles.
MAKEFLAGS += --no-print-directory
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
HOST ?= 127.0.0.1
PORT ?= 8080
SERVE_ARGS ?=
# Where `make run` keeps streams across restarts (git-ignored; docs/durability.md).
DATA_DIR ?= data

.PHONY: setup configure build web run test sanitizers bench fuzz clean format

# What scripts/setup.sh installs follows the goals: `make build` needs only the
# compiler and libraries (no Node.js, npm or GoogleTest); run needs the page's
# Node.js; test needs GoogleTest and Chromium too; fuzz needs clang; bench curl.
# `make setup` alone installs everything.
SETUP_PROFILES := build \
  $(if $(filter run web,$(MAKECMDGOALS)),web) \
  $(if $(filter test,$(MAKECMDGOALS)),test) \
  $(if $(filter fuzz,$(MAKECMDGOALS)),fuzz) \
  $(if $(filter bench,$(MAKECMDGOALS)),bench) \
  $(if $(filter setup,$(MAKECMDGOALS)),all)

setup:
	@bash scripts/setup.sh $(strip $(SETUP_PROFILES))

# Configuring writes a stamp only when CMake succeeded, so a failed configure
# is run again by the next make (CMakeCache.txt exists after a failure too).
# The tests' stamp is separate: a build first configured without GoogleTest
# (make build) is configured again once, by make test, after setup installed it.
CONFIGURE_STAMP := $(BUILD_DIR)/.sluice-configured$(if $(filter test,$(MAKECMDGOALS)),-with-tests)

# A new build directory uses Ninja (Debian's ninja-build, which setup.sh
# installs) when present: one scheduler for the whole graph instead of a make
# per target, less overhead per step, and .ninja_log records what each step
# took. A directory already configured keeps its generator.
new_dir_generator = [ -f $(1)/CMakeCache.txt ] || ! command -v ninja >/dev/null || gen="-G Ninja"

$(CONFIGURE_STAMP): | setup
	@rm -f $(BUILD_DIR)/.sluice-configured $(BUILD_DIR)/.sluice-configured-with-tests
	@gen=; $(call new_dir_generator,$(BUILD_DIR)); \
	out=$$(cmake -S . -B $(BUILD_DIR) $$gen -DCMAKE_BUILD_TYPE=Release 2>&1) || \
	  { printf '%s\n' "$$out"; echo "configure failed; the next make runs it again" >&2; exit 1; }
	@touch $(BUILD_DIR)/.sluice-configured $@

configure: setup $(CONFIGURE_STAMP)

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

# The web page (web/app, using the client package web/client) and its browser
# tests (web/e2e). `npm ci` runs when node_modules is missing or the lock file
# changed (a stamp inside node_modules); a package is rebuilt only when its
# sources changed. Quiet unless something is done or fails.
WEB_STAMP = node_modules/.sluice-npm-ci
npm_quiet = out=$$($(1) 2>&1) || { printf '%s\n' "$$out"; exit 1; }
WEB_CLIENT_SRC := $(shell find web/client/src -type f 2>/dev/null) $(wildcard web/client/package.json web/client/tsconfig.json)
WEB_APP_SRC := $(shell find web/app/src -type f 2>/dev/null) $(wildcard web/app/package.json web/app/tsconfig.json web/app/vite.config.ts web/app/index.html)

web/%/$(WEB_STAMP): web/%/package-lock.json
	@echo "web: npm ci in web/$*"
	@cd web/$* && $(call npm_quiet,npm ci --no-audit --no-fund)
	@touch $@

# web/app imports web/client's dist/ through a Vite alias (no linked package, so
# one lock file installs with Debian 12's npm 9 and newer npms alike).
web/app/$(WEB_STAMP): web/client/$(WEB_STAMP)

web/client/dist/.sluice-built: web/client/$(WEB_STAMP) $(WEB_CLIENT_SRC)
	@echo "web: building web/client"
	@cd web/client && $(call npm_quiet,npm run build)
	@touch $@

web/app/dist/index.html: web/app/$(WEB_STAMP) web/client/dist/.sluice-built $(WEB_APP_SRC)
	@echo "web: building web/app"
	@cd web/app && $(call npm_quiet,npm run build)
	@touch $@

web: setup web/app/dist/index.html web/e2e/$(WEB_STAMP)

run: build web
	./$(BUILD_DIR)/sluice serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR) $(SERVE_ARGS)

# The C++ tests also run under sanitizers: `make test` builds them in
# build-asan (ASan + UBSan + LeakSanitizer) and build-tsan (ThreadSanitizer),
# target sanitizer_tests only, and the main build's ctest runs them as
# asan.NAME and tsan.NAME (one summary): every C++ test program under both,
# the fuzz corpus replays under asan. `make test SANITIZERS=` skips the
# builds (ctest then reports those tests as skipped).
SANITIZERS ?= asan tsan

sanitizers: configure
	@for s in $(SANITIZERS); do \
	  case $$s in asan) mode=address;; tsan) mode=thread;; \
	    *) echo "SANITIZERS: unknown '$$s' (asan, tsan)"; exit 1;; esac; \
	  echo "sanitizers: building the C++ tests in build-$$s ($$mode)"; \
	  gen=; $(call new_dir_generator,build-$$s); \
	  cmake -S . -B build-$$s $$gen -DCMAKE_BUILD_TYPE=Sanitize -DSLUICE_SANITIZE=$$mode \
	    -DSLUICE_WERROR=OFF >/dev/null || exit 1; \
	  cmake --build build-$$s -j $(JOBS) --target sanitizer_tests || exit 1; \
	done

test: build web sanitizers
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 300

# The benchmark suite (docs/benchmarks.md): installs its peers (bench/setup.sh),
# then runs every workload against Sluice, the floor server and the peers;
# then the two-node run (Redis, node A, node B; docs/scaling.md).
bench: build
	bash bench/setup.sh
	bash bench/run.sh $(BUILD_DIR)
	bash bench/redis/run_two_node_bench.sh $(BUILD_DIR)

# libFuzzer on every parser that takes bytes from the network (fuzz/), each
# for FUZZ_SECONDS, starting from its committed seeds (fuzz/corpus/NAME; new
# inputs go to build-fuzz/corpus/NAME). Needs clang with libFuzzer (Debian's
# clang and libclang-rt-dev): installed when missing (apt-get as root, sudo
# otherwise). A finding is saved as build-fuzz/artifacts/NAME-crash-* and
# fails the run.
FUZZ_SECONDS ?= 30
FUZZ_TARGETS ?= sse_parser_fuzz http_route_fuzz ws_op_fuzz agent_request_fuzz \
  openai_chunk_fuzz searxng_results_fuzz gzip_inflater_fuzz fts_query_fuzz html_to_text_fuzz \
  stored_delta_fuzz resp_reader_fuzz segment_record_fuzz
fuzz: setup
	@probe='extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }'; \
	if ! echo "$$probe" | clang++ -x c++ -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1; then \
	  echo "fuzz: installing clang with libFuzzer (Debian: clang libclang-rt-dev)"; \
	  if [ "$$(id -u)" = 0 ]; then as_root=; else as_root=sudo; fi; \
	  $$as_root apt-get update -qq && \
	  $$as_root apt-get install -y --no-install-recommends clang libclang-rt-dev || exit 1; \
	fi
	@cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ \
	  -DSLUICE_LIBFUZZER=ON -DSLUICE_WERROR=OFF >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target $(FUZZ_TARGETS)
	@mkdir -p build-fuzz/artifacts build-fuzz/logs; failed=; \
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p build-fuzz/corpus/$$t; \
	  ./build-fuzz/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=10 \
	    -artifact_prefix=build-fuzz/artifacts/$$t- build-fuzz/corpus/$$t fuzz/corpus/$$t \
	    > build-fuzz/logs/$$t.log 2>&1 || failed="$$failed $$t"; \
	  echo "fuzz: $$t: $$(grep -o 'Done [0-9]* runs in [0-9]* second(s)' build-fuzz/logs/$$t.log || \
	    echo 'FAILED, see build-fuzz/logs/'$$t'.log')"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: findings in:$$failed (build-fuzz/artifacts)"; exit 1; fi

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

clean:
	rm -rf $(BUILD_DIR)
