# The two commands: `make demo` runs the main job, `make test` passes the tests.
# Both create .venv and install the core and every plugin package present under plugins/.
PYTHON ?= python3
VENV   := .venv
PIP    := $(VENV)/bin/pip
PY     := $(VENV)/bin/python
PLUGINS := $(sort $(wildcard plugins/*/pyproject.toml))

.PHONY: demo test bench install clean

$(VENV)/.installed: pyproject.toml $(PLUGINS) $(wildcard plugins/*/install-cpu.sh)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -U pip
	for script in plugins/*/install-cpu.sh; do [ ! -f "$$script" ] || sh "$$script" $(PIP) || exit 1; done
	$(PIP) install -q -e ".[test,ray]"
	# a plugin with an install-cpu.sh has its stack installed by that script: install it alone
	for p in $(dir $(PLUGINS)); do \
	  if [ -f "$$p/install-cpu.sh" ]; then $(PIP) install -q --no-deps -e "$$p" || exit 1; \
	  else $(PIP) install -q -e "$$p[cpu,test]" || exit 1; fi; \
	done
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) examples/rag_demo.py

test: install
	$(PY) -m pytest tests plugins -q -m "not gpu"

bench: install
	$(PY) bench/engine.py

clean:
	rm -rf $(VENV)
