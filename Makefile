# The two commands of the README: `make demo` and `make test`.
CARGO ?= cargo
LORAGEN := target/release/loragen

.PHONY: demo test deps build models mcp-servers

deps:
	@./scripts/install-deps.sh

build: deps
	$(CARGO) build --release --workspace --bins --examples

models: build
	$(LORAGEN) models fetch

# Compiled mode joins the demo when there is a generator: the shipped one
# or LORAGEN_GENERATOR's.
DEMO_COMPILED := $(if $(or $(LORAGEN_GENERATOR),$(wildcard generator/checkpoints/default/config.json)),--mode compiled)

# The main job on the default models: a completion, the agent (compiled
# mode when there is a generator, its compile timed), and a short GPT4Tools
# benchmark (50 items of our test_unseen split: in context, with prefix
# reuse, and compiled).
demo: models
	$(CARGO) run --release --quiet --example edge_completion
	$(CARGO) run --release --quiet --example agent_demo
	$(LORAGEN) data gpt4tools --out data/gpt4tools
	$(LORAGEN) bench gpt4tools --data data/gpt4tools/test_unseen.json --mode in-context --mode in-context-cached \
		$(DEMO_COMPILED) --constrained --limit 50 --out runs/demo-gpt4tools

# The MCP servers the tests run against, pinned, in a prefix of their own.
MCP_SERVERS := $(CURDIR)/target/mcp-servers

mcp-servers:
	@./scripts/install-mcp-servers.sh $(MCP_SERVERS)

# Every test, the real-model and real-MCP-server ones included.
# --no-fail-fast: every test binary runs and every failure is reported,
# so one red test cannot hide the others. Doctests run as well, and the
# API docs must build without a warning (a broken link is one).
test: models mcp-servers
	LORAGEN_MCP_SERVERS=$(MCP_SERVERS) $(CARGO) test --release --workspace --all-targets --no-fail-fast
	$(CARGO) test --release --workspace --doc --no-fail-fast
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --release --workspace --no-deps
