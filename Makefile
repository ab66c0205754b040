# The one entry point. `make dev` runs the whole system locally; `make test`
# runs every test. Both install what they need.

.PHONY: dev test check bench fuzz zips infra deny lint fmt clean finexer-check

dev:
	@scripts/dev.sh

test:
	@scripts/test.sh

# Quick checks with no services: formatting, lints, and the unit tests.
check:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace --lib --bins
	@scripts/check-shipped.sh --self-test
	@scripts/check-shipped.sh
	@scripts/check-map.sh

# The parts of `make test`, one at a time.
bench:
	@scripts/bench.sh $(ARGS)

fuzz:
	@scripts/fuzz.sh $(ARGS)

zips:
	@scripts/build-zips.sh

infra:
	@scripts/check-infra.sh

# Licences, bans, sources (offline); `make deny ARGS=advisories` needs the network.
deny:
	@scripts/deny.sh $(ARGS)

# Before the first deploy: FINEXER_BASE_URL=... FINEXER_API_KEY=... make finexer-check
# (more options: make finexer-check ARGS="--record recording --wait-for-approval 300")
finexer-check:
	@scripts/finexer-check.sh $(ARGS)

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

clean:
	cargo clean
	rm -rf .venv .local
