# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BACKBONE ?= sasrec
RUN ?= runs/demo-$(BACKBONE)
# The apps' core tests run beside a live `cli.py serve` (tests/live_service.py); LIVE_WORKDIR keeps its tiny run.
LIVE := $(PY) tests/live_service.py $(if $(LIVE_WORKDIR),--workdir $(LIVE_WORKDIR))
MOBILE_DEBS := kotlin junit4 libgoogle-gson-java libbcprov-java

EXAMPLE_RUN ?= runs/example

.PHONY: demo example test python-test android-core-test ios-core-test mobile-deps golden venv clean

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

# The worked example: a model and data set of a user's own (examples/digits_devices.py), trained, evaluated, exported.
example: $(STAMP)
	rm -rf $(EXAMPLE_RUN) exports/example
	$(PY) examples/personalize_digits.py --out $(EXAMPLE_RUN) --exports exports/example

# Everything: the Python suite, then the Kotlin and Swift cores against the golden files and one live service.
test: python-test
	work=$$(mktemp -d) && trap 'rm -rf "$$work"' EXIT && \
	$(MAKE) --no-print-directory android-core-test ios-core-test LIVE_WORKDIR="$$work"

python-test: $(STAMP)
	$(PY) -m pytest -q tests

# android_demo/core with Debian's kotlinc and JUnit 4 (`make mobile-deps` installs them).
android-core-test: $(STAMP)
	@command -v kotlinc >/dev/null || { echo "kotlinc not found: run 'make mobile-deps' (Debian: $(MOBILE_DEBS))" >&2; exit 1; }
	$(LIVE) -- bash android_demo/core/test.sh

# ios_demo/DuetKit with the Swift toolchain's `swift test` (its tests are XCTest; Swift Testing, unused, would close on "0 tests").
ios-core-test: $(STAMP)
	@command -v swift >/dev/null || { echo "swift not found: install Swift 6 (swift.org) and put it on PATH" >&2; exit 1; }
	$(LIVE) -- swift test --disable-swift-testing --package-path ios_demo/DuetKit

# Debian packages the Kotlin core's tests need (as root, or through sudo).
mobile-deps:
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -q
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -q $(MOBILE_DEBS)

# Rewrite tests/golden/ after a deliberate change of the device protocol (tests/test_golden.py checks it).
golden: $(STAMP)
	$(PY) tests/golden.py

clean:
	rm -rf runs/demo-* .cache android_demo/core/build ios_demo/DuetKit/.build  # the data cache: ~/.cache/duet
