PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
# every version `make` installs comes from $(LOCK), hashes checked; pyproject.toml keeps the ranges
LOCK_ARGS := pyproject.toml --extra test --extra lint --group tools --universal \
	--python-version 3.11 --generate-hashes --custom-compile-command 'make lock'
PYTEST_WORKERS ?= 3

.PHONY: run test lint bench lock drift clean

$(STAMP): $(LOCK) pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	awk '/^uv==/ {keep=1; print; next} keep && /^ / {print; next} {keep=0}' $(LOCK) > $(VENV)/uv.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r $(VENV)/uv.txt
	$(BIN)/uv pip sync --quiet --python $(BIN)/python --require-hashes $(LOCK)
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/nodewb lab

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder \
		--durations=15 $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench

# refresh the lock to today's newest versions within pyproject.toml's ranges
lock: $(STAMP)
	$(BIN)/uv pip compile --quiet --upgrade $(LOCK_ARGS) -o $(LOCK)

# what a user gets from `pip install .` today, without the lock: every command must stay quiet
DRIFT := $(VENV)-drift
drift: $(STAMP)
	rm -rf $(DRIFT)
	$(BIN)/uv venv --quiet --python $(PYTHON) $(DRIFT)
	$(BIN)/uv pip install --quiet --python $(DRIFT)/bin/python '.[test]'
	$(DRIFT)/bin/python -m pytest -q -p no:cacheprovider tests/test_quiet_commands.py

clean:
	rm -rf $(VENV) $(DRIFT)
