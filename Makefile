PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := uv.lock
# every version `make` installs comes from $(LOCK), hashes checked; pyproject.toml keeps the ranges
SYNC_ARGS := --frozen --extra test --extra lint --group tools --no-install-project
PYTEST_WORKERS ?= 3
# uv itself, pinned and hash-checked from the lock, for pip to install before uv takes over
UV_PIN := import tomllib; p = next(p for p in tomllib.load(open("$(LOCK)", "rb"))["package"] \
	if p["name"] == "uv"); print("uv==" + p["version"], *("--hash=" + w["hash"] \
	for w in p.get("wheels", []) + [p["sdist"]]))

.PHONY: run test lint bench lock drift clean

$(STAMP): $(LOCK) pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PYTHON) -c '$(UV_PIN)' > $(VENV)/uv.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r $(VENV)/uv.txt
	$(BIN)/uv sync --quiet $(SYNC_ARGS)
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
	$(BIN)/uv lock --quiet --upgrade

# what a user gets from `pip install .` today, without the lock: every command must stay quiet
DRIFT := $(VENV)-drift
drift: $(STAMP)
	rm -rf $(DRIFT)
	$(BIN)/uv venv --quiet --python $(PYTHON) $(DRIFT)
	$(BIN)/uv pip install --quiet --python $(DRIFT)/bin/python '.[test]'
	$(DRIFT)/bin/python -m pytest -q -p no:cacheprovider tests/test_quiet_commands.py

clean:
	rm -rf $(VENV) $(DRIFT)
