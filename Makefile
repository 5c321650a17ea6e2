# sv-lite: build, run, test, lint, bench. `make test` is what CI runs (.ci/run).
CARGO ?= cargo
STATIC_TARGET := x86_64-unknown-linux-gnu
# Where cargo builds: CARGO_TARGET_DIR when the environment sets it (as cargo itself reads it).
CARGO_TARGET_DIR ?= target
STATIC_BIN := $(abspath $(CARGO_TARGET_DIR))/$(STATIC_TARGET)/release/sv-lite

.PHONY: build run test lint static bench fuzz-smoke fuzz soak soak-smoke clean

build:
	$(CARGO) build --release

run: build
	./target/release/sv-lite -c examples/demo.yaml -s /tmp/sv-lite-demo.sock

# Unit tests, then the end-to-end suite against the shipped static binary. The release build is
# what the README's first command runs (tests/e2e_readme.rs runs it as written).
test: static build
	SV_LITE_STATIC_BIN=$(STATIC_BIN) $(CARGO) test --no-fail-fast -- --test-threads=2

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# A statically linked release binary (glibc with crt-static; no NSS use in our code). Not
# position-independent: a static-pie carries 83 KB of relocations (.rela.dyn), which the
# 2.5 MiB budget cannot spare; the stack, heap and mappings are still randomised.
static:
	RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" $(CARGO) build --release --target $(STATIC_TARGET)
	@file $(STATIC_BIN) 2>/dev/null || true
	@ls -l $(STATIC_BIN)

bench: static
	$(CARGO) run --release --example bench -- $(STATIC_BIN)

# A million restarts against the static binary (examples/soak.rs): fails unless the daemon's
# descriptor count is flat and its RSS grows less than 1 MiB after warm-up. docs/RELIABILITY.md
# has the last result. `soak-smoke` is the same for 60 seconds (CI).
soak: static
	$(CARGO) run --release --example soak -- $(STATIC_BIN) --restarts 1000000

soak-smoke: static
	$(CARGO) run --release --example soak -- $(STATIC_BIN) --seconds 60

# Coverage-guided fuzzing of the parsers (libFuzzer through libfuzzer-sys, stable rustc; see
# docs/RELIABILITY.md). fuzz/ is a workspace of its own. `fuzz-smoke` is CI's: six targets,
# two at a time for 20 s each, 60 s in all; any crash, hang or OOM fails it. `fuzz` runs each
# target for FUZZ_SECONDS (default 10 minutes) and prints the exec counts.
FUZZ_SECONDS ?= 600
FUZZ_JOBS ?= 2

fuzz-smoke:
	CARGO=$(CARGO) FUZZ_JOBS=2 fuzz/run.sh 20

fuzz:
	CARGO=$(CARGO) FUZZ_JOBS=$(FUZZ_JOBS) fuzz/run.sh $(FUZZ_SECONDS)

clean:
	$(CARGO) clean
