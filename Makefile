# Two entry points: `make study` (the embedded default study) and `make test`.
# Each creates or updates the virtual environment in .venv when needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: study test venv clean-venv lint-notebooks

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install -e ".[notebooks,test]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

venv: $(STAMP)

study: $(STAMP)
	$(PY) -m fgra_core.study --plan quick

test: $(STAMP)
	$(PY) -m pytest -q

lint-notebooks: $(STAMP)
	$(VENV)/bin/nbstripout --verify notebooks/*.ipynb

clean-venv:
	rm -rf $(VENV)
