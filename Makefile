# Two commands: `make app` runs the Streamlit app, `make test` runs the whole suite.
# Each creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: app test bench browser-deps screenshot clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,bench]"
	touch $(STAMP)

app: $(STAMP)
	$(VENV)/bin/streamlit run app/streamlit_app.py

browser-deps:
	@bash scripts/ensure_browser.sh

test: $(STAMP) browser-deps
	$(PY) -m pytest -p no:cacheprovider

bench: $(STAMP)
	$(PY) experiments/bench_inference.py

screenshot: $(STAMP) browser-deps
	$(PY) scripts/screenshot.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
