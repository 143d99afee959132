# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BACKBONE ?= sasrec
RUN ?= runs/demo-$(BACKBONE)
# The apps' core tests run beside a live `cli.py serve` (tests/live_service.py); LIVE_WORKDIR keeps its tiny run.
LIVE := $(PY) tests/live_service.py $(if $(LIVE_WORKDIR),--workdir $(LIVE_WORKDIR))
# The Kotlin core's tests need these Debian packages; `make test` installs the missing ones (mobile-deps).
MOBILE_DEBS := kotlin junit4 libgoogle-gson-java libbcprov-java
APT_GET ?= apt-get
# Where the Swift 6 toolchain is unpacked when it is not on PATH (as on the CI machines).
export PATH := $(if $(wildcard /opt/swift/usr/bin/swift),/opt/swift/usr/bin:)$(PATH)

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

# Everything: the Debian packages the Kotlin core needs (installed when missing), the Python suite, then the Kotlin
# and Swift cores against the golden files and one live service.
test: mobile-deps python-test
	work=$$(mktemp -d) && trap 'rm -rf "$$work"' EXIT && \
	$(MAKE) --no-print-directory android-core-test ios-core-test LIVE_WORKDIR="$$work"

python-test: $(STAMP)
	$(PY) -m pytest -q tests

# android_demo/core with Debian's kotlinc and JUnit 4 (installed first when missing).
android-core-test: $(STAMP) mobile-deps
	$(LIVE) -- bash android_demo/core/test.sh

# ios_demo/DuetKit with the Swift toolchain's `swift test` (its tests are XCTest; Swift Testing, unused, would close on "0 tests").
ios-core-test: $(STAMP)
	@command -v swift >/dev/null || { echo "swift not found: install Swift 6 (swift.org) and put it on PATH" >&2; exit 1; }
	$(LIVE) -- swift test --disable-swift-testing --package-path ios_demo/DuetKit

# The packages of MOBILE_DEBS that dpkg does not list as installed, installed as root or through sudo (which may ask
# for a password on a terminal); without either, one line says what to install. Nothing to do off Debian.
mobile-deps:
	@command -v dpkg-query >/dev/null || exit 0; \
	missing=""; for package in $(MOBILE_DEBS); do \
	  dpkg-query -W -f='$${Status}\n' "$$package" 2>/dev/null | grep -q ' installed$$' || missing="$$missing $$package"; \
	done; \
	[ -n "$$missing" ] || exit 0; \
	if [ "$$(id -u)" = 0 ]; then as=""; \
	elif command -v sudo >/dev/null && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then as="sudo"; \
	else echo "make test needs the Debian packages$$missing: run 'sudo apt-get install$$missing' (or make as root)" >&2; exit 1; fi; \
	echo "installing the Debian packages$$missing (the Kotlin core's tests need them)"; \
	$$as $(APT_GET) update -q && $$as env DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -q $$missing

# Rewrite tests/golden/ after a deliberate change of the device protocol (tests/test_golden.py checks it).
golden: $(STAMP)
	$(PY) tests/golden.py

clean:
	rm -rf runs/demo-* .cache android_demo/core/build ios_demo/DuetKit/.build  # the data cache: ~/.cache/duet
