# The two commands a new user needs: `make run` and `make test` (see README.md).
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
HOST ?= 127.0.0.1
PORT ?= 8080
SERVE_ARGS ?=

.PHONY: setup configure build run test bench fuzz clean format

setup:
	@bash scripts/setup.sh

$(BUILD_DIR)/CMakeCache.txt:
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release >/dev/null

configure: setup $(BUILD_DIR)/CMakeCache.txt

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

run: build
	./$(BUILD_DIR)/sluice serve --host $(HOST) --port $(PORT) $(SERVE_ARGS)

test: build
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
