# The two commands of the README: `make demo` and `make test`. Everything they need is installed from here.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
DEMO    = examples/demo.yaml

.PHONY: demo test lint unit integration clean system-deps

# The C extensions and the modules compiled with mypyc (setup.py) are built by the editable install, next to
# their sources: a changed source is rebuilt by installing again.
COMPILED := $(shell $(PYTHON) -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['tool']['wardgate']['compiled'])")
$(BIN)/.installed: pyproject.toml setup.py wardgate/masking/_prefilter.c wardgate/masking/_prefilter_core.h \
		wardgate/masking/_bulk.c wardgate/protocols/postgres/_datarow.c wardgate/protocols/postgres/_framing.c \
		wardgate/audit/_records.c $(COMPILED)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

## Set up, load the demo dataset into the local PostgreSQL, issue a demo token and run the gateway.
demo: $(BIN)/.installed
	$(BIN)/wardgate demo load
	@TOKEN=$$($(BIN)/wardgate token create -c $(DEMO) --user alice --groups eng --ttl 8h) && \
	  echo && echo "Connect as alice (token valid 8h; it is printed only here):" && \
	  echo "  PGPASSWORD='$$TOKEN' psql 'host=127.0.0.1 port=15432 dbname=demo user=alice sslmode=require'" && \
	  echo "Then: $(BIN)/wardgate sessions list -c $(DEMO)" && echo
	exec $(BIN)/wardgate serve -c $(DEMO)

## Set up and run every check: lint, types, unit and integration tests against the real servers.
test: $(BIN)/.installed system-deps
	$(BIN)/ruff check wardgate tests bench setup.py
	$(BIN)/mypy
	$(BIN)/pytest

system-deps:
	scripts/system-deps.sh

lint: $(BIN)/.installed
	$(BIN)/ruff check wardgate tests bench setup.py
	$(BIN)/mypy

unit: $(BIN)/.installed
	$(BIN)/pytest tests/unit

integration: $(BIN)/.installed
	$(BIN)/pytest tests/integration

clean:
	rm -rf $(VENV) .wardgate .mypy_cache .ruff_cache .pytest_cache build
	find wardgate -name "*.so" -delete
