# Set-up and entry points; see README.md.
#   make run        set up what is missing, then start the service (embedded default)
#   make test       set up what is missing, then run the whole test suite, and
#                   the unit and API tests again with the fast path off (~1.5 min)
#   make test-unit  the same without the tests marked "integration"
#   make test-slow-path  the unit and API tests with the fast path off
#                   (public APIs of Twisted and autobahn only, csvc/fastpath/)
# Extra pytest arguments: make test PYTEST_ARGS='-k containers -x'

PYTHON_VENV := .venv/bin/python
PYTEST := $(PYTHON_VENV) -m pytest -q -p no:cacheprovider
PYTEST_ARGS ?=

.PHONY: bootstrap run test test-unit test-slow-path clean

bootstrap:
	bash scripts/bootstrap.sh

run: bootstrap
	bash scripts/run.sh

test: bootstrap
	$(PYTEST) tests $(PYTEST_ARGS)
	CSVC_FAST_PATH=off $(PYTEST) -m 'not integration' tests $(PYTEST_ARGS)

test-unit: bootstrap
	$(PYTEST) -m 'not integration' tests $(PYTEST_ARGS)

test-slow-path: bootstrap
	CSVC_FAST_PATH=off $(PYTEST) -m 'not integration' tests $(PYTEST_ARGS)

clean:
	rm -rf var/
