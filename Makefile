# The one entry point. `make dev` runs the whole system locally; `make test`
# runs every test. Both install what they need.

.PHONY: dev test lint fmt clean

dev:
	@scripts/dev.sh

test:
	@scripts/test.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

clean:
	cargo clean
	rm -rf .venv .local
