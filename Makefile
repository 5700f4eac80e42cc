# `make bench` and `make test` each bootstrap .venv on a machine that has only python3, then run.
# The install is redone only when pyproject.toml or the constraints file changes (stamp keyed on
# their content; INSTALLER=pip installs with pip). GPU users: `make bench CONSTRAINTS=path/to/constraints.txt EXTRAS=test,numba,jax,dist,data,gpu`.
PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?= constraints.txt
EXTRAS ?= test,numba,jax,dist,data
BIN := $(VENV)/bin
comma := ,
KEY := $(shell cat pyproject.toml $(CONSTRAINTS) 2>/dev/null | { sha256sum 2>/dev/null || shasum -a 256; } | cut -c1-12)
STAMP := $(VENV)/.installed-$(KEY)-$(subst $(comma),_,$(EXTRAS))
PYTEST_ARGS ?=
# one pytest-xdist worker per core: the suite is mostly single-threaded (torch at 1 thread in tests);
# worksteal: a worker that runs out takes tests queued on the other (the slow CLI tests otherwise
# end the run on one worker while the other waits)
XDIST ?= -n auto --dist worksteal

.PHONY: bench test test-fast lint setup clean gpu reference

setup: $(STAMP)

# The install: uv (put into the venv by pip) when INSTALLER=uv, the default; pip otherwise, or when
# uv cannot be had or fails. uv installs and byte-compiles in parallel: 38-59 s against pip's 98 s for
# the same versions on a 2-core VM. It reads no pip configuration, so pip's find-links (local wheels,
# such as a CPU build of torch on disk) are handed to it.
INSTALLER ?= uv
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if [ "$(INSTALLER)" = uv ] && { test -x $(BIN)/uv || $(PIP) uv 2>/dev/null; }; then \
	  links=""; for l in $${PIP_FIND_LINKS:-$$($(BIN)/python -m pip config get global.find-links 2>/dev/null)}; do \
	    links="$$links --find-links $$l"; done; \
	  echo "$(BIN)/uv pip install --compile-bytecode -c $(CONSTRAINTS)$$links -e .[$(EXTRAS)]"; \
	  $(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -c $(CONSTRAINTS) $$links \
	    -e ".[$(EXTRAS)]" || { echo "uv failed: installing with pip" >&2; \
	    $(PIP) -c $(CONSTRAINTS) -e ".[$(EXTRAS)]"; }; \
	else \
	  echo "pip install -c $(CONSTRAINTS) -e .[$(EXTRAS)]"; $(PIP) -c $(CONSTRAINTS) -e ".[$(EXTRAS)]"; \
	fi
	@rm -f $(VENV)/.installed-*
	@touch $@

bench: $(STAMP)
	$(BIN)/python -m bench run

# The reference run and the studies beside it, regenerated in one go from this code (nothing in
# results/reference is older than the code that reads it: the folder is emptied first), then the
# documents made from them: docs/results.md (verdict, tables, machine) and docs/schema.md. Long: the
# four blocks, the sweep and the scale study take many minutes on a small machine.
REFERENCE ?= results/reference
reference: $(STAMP)
	rm -rf $(REFERENCE)
	$(BIN)/python -m bench run --blocks all --out $(REFERENCE)
	$(BIN)/python -m bench sweep --out $(REFERENCE)/sweep
	$(BIN)/python -m bench sweep --datasets synthetic-1Mx100 --record-every 1000 --iters 10 --out $(REFERENCE)/sweep-step-alone
	$(BIN)/python -m bench scale --out $(REFERENCE)/scale
	$(BIN)/python -m bench grad --l2 0 0.1 --out $(REFERENCE)/grad
	$(BIN)/python -m bench trajectory --a numpy --b torch --out $(REFERENCE)/trajectory
	$(BIN)/python -m bench report $(REFERENCE) --doc docs/results.md --schema docs/schema.md

# Everything: ruff first (seconds), then the whole suite. Benchmarks run once each with timing
# disabled; `pytest --benchmark-only` times them for real. pytest's exit 5 (no test collected) is
# reported and fails the target like any other failure.
test: lint
	@$(BIN)/python -m pytest --benchmark-disable $(XDIST) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check .

# The edit-test loop, a quarter of `make test`'s time or less. It leaves out (pyproject.toml's markers):
# subprocess (tests that start a Python process: signals, exit statuses, fresh imports, pip), compile
# (torch-compiled, jax, numba: Inductor/XLA/numba compilations), distributed (torch-ddp, numpy-dask
# worker processes) and slow (whole `bench run`s with several backends). Every backend's public checks
# and oracle agreement still run for the eager backends. `make test` runs everything.
FAST_MARKERS ?= not slow and not subprocess and not compile and not distributed and not multihost
test-fast: $(STAMP)
	@$(BIN)/python -m pytest --benchmark-disable $(XDIST) -m "$(FAST_MARKERS)" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-fast: pytest collected no tests" >&2; fi; exit $$rc

# The GPU half (docs/gpu.md): on a CUDA machine whose Python already has the dependencies, from the
# working tree with no install step; <= 8 minutes, at most 8 files in results/gpu.
gpu:
	PYTHONPATH=. python -m bench gpu --out results/gpu

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
