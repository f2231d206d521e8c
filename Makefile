# The two commands of the README: `make demo` and `make test`.
CARGO ?= cargo
LORAGEN := target/release/loragen

.PHONY: demo test deps build models

deps:
	@./scripts/install-deps.sh

build: deps
	$(CARGO) build --release --workspace --bins --examples

models: build
	$(LORAGEN) models fetch

# The main job on the default models.
demo: models
	$(CARGO) run --release --quiet --example edge_completion
	$(CARGO) run --release --quiet --example agent_demo

# Every test, the real-model ones included (they need `make models`).
test: models
	$(CARGO) test --release --workspace --all-targets
