# The two commands a newcomer needs:  `make up`  and  `make test`.
PY := .venv/bin/python
export PATH := $(CURDIR)/.venv/bin:$(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: setup up test test-fast gen check-gen lint lock bench clean

# Installs everything (Python venv, Node tooling, generated code) from the package registries.
setup:
	bash scripts/setup.sh

up: setup
	$(PY) -m cli.main up

test: setup
	bash scripts/test.sh

# The fast lane (after one `make setup`): unit and rule tests only, no real server, under a minute.
test-fast:
	.venv/bin/pytest --fast -q

# Regenerates gen/ (Python, TypeScript, descriptor set) from proto/.
gen:
	bash scripts/generate.sh

# Fails when the committed generated code differs from what proto/ generates.
check-gen: gen
	git diff --exit-code --stat -- gen/ || (echo "gen/ is stale: run 'make gen' and commit" && exit 1)

lint:
	node_modules/.bin/buf lint
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

# Re-pins constraints.txt to what is installed in .venv (after changing dependencies).
lock:
	.venv/bin/pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

bench:
	$(PY) -m bench

clean:
	rm -rf .venv node_modules build
