# The one entry point. `make dev` runs the whole system locally; `make test`
# runs every test. Both install what they need.

.PHONY: dev test lint fmt clean finexer-check

dev:
	@scripts/dev.sh

test:
	@scripts/test.sh

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
