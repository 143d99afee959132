# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BACKBONE ?= sasrec
RUN ?= runs/demo-$(BACKBONE)

.PHONY: demo test venv clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# Train Base and the DUET generator on the embedded MovieLens data, then score Base, fine-tuning and DUET.
demo: $(STAMP)
	rm -rf $(RUN)
	$(PY) cli.py train --backbone $(BACKBONE) --out $(RUN)
	$(PY) cli.py evaluate $(RUN)

test: $(STAMP)
	$(PY) -m pytest -q tests

clean:
	rm -rf runs/demo-* .cache
