# make run: install into .venv, then start the bot (terminal chat when no platform token is set).
# make test: install into .venv, then lint (ruff) and run the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test bench eval clean check-java check-postgres

install: $(STAMP)

$(STAMP): pyproject.toml | check-java
	@echo "installing the bot and its dependencies into $(VENV) (a few minutes the first time; later runs skip this)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# KoNLPy's Okt runs in a Java VM: find Java, or install a JRE where apt-get can, or say so in one line.
check-java:
	@command -v java >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && apt-get install -y -qq default-jre-headless >/dev/null); } || \
	  { echo "Java 17+ is required by KoNLPy: install a JRE (e.g. apt-get install default-jre-headless) and retry" >&2; exit 1; }

# The PostgreSQL tests start a throwaway server (initdb + pg_ctl, tests/postgres.py) from Debian's binaries:
# install them where apt-get can; elsewhere those tests are skipped and say why (CI makes that a failure).
check-postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || \
	  { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null); } || \
	  echo "PostgreSQL server binaries (initdb, pg_ctl) not found and not installable here: the PostgreSQL tests will be skipped" >&2

run: install
	$(BIN)/chatbot serve

test: install check-postgres
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/chatbot bench

eval: install
	$(BIN)/chatbot eval

clean:
	rm -rf $(VENV) .pytest_cache
