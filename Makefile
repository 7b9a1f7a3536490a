# The two commands a new user needs: `make run` and `make test` (see README.md).
# No "Entering directory" chatter from the CMake-generated makefiles.
MAKEFLAGS += --no-print-directory
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
HOST ?= 127.0.0.1
PORT ?= 8080
SERVE_ARGS ?=

.PHONY: setup configure build web run test bench fuzz clean format

setup:
	@bash scripts/setup.sh

$(BUILD_DIR)/CMakeCache.txt:
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release >/dev/null

configure: setup $(BUILD_DIR)/CMakeCache.txt

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
	./$(BUILD_DIR)/sluice serve --host $(HOST) --port $(PORT) $(SERVE_ARGS)

test: build web
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 300

bench: build
	bash bench/run.sh $(BUILD_DIR)

# libFuzzer on the SSE parser for FUZZ_SECONDS (clang from Debian's clang package).
FUZZ_SECONDS ?= 60
fuzz: setup
	@cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DSLUICE_LIBFUZZER=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target sse_parser_fuzz
	./build-fuzz/fuzz/sse_parser_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

clean:
	rm -rf $(BUILD_DIR)
