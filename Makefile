# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench lint clean install browser

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

## Start the whole platform on embedded defaults (SQLite, embedded Redis, SMTP capture inbox)
run: $(STAMP)
	$(PY) -m nurture_mail run --demo

## Browser tests use Debian's chromium; install it when missing (root, as on CI machines)
browser:
	@command -v chromium >/dev/null 2>&1 || test -x /usr/bin/chromium || \
	  { if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "chromium could not be installed: browser tests will be skipped (they fail under CI=true)"; \
	    else echo "chromium missing and not root: browser tests will be skipped (they fail under CI=true)"; fi; }

## Run the test suite (SQLite always; PostgreSQL and Redis services when reachable), on two
## processes (pytest-xdist; each has its own Redis database, PostgreSQL schema and SQLite files)
test: $(STAMP) browser
	$(PY) -m pytest -q -n 2 --dist loadfile

## Benchmarks: print figures, compare with the practical limit (see docs/benchmarks.md).
## The send verdict: the pipeline (a worker pool, one worker per core, and one worker alone)
## and plain smtplib, interleaved, medians and CPU per email; then the tick on PostgreSQL
## (1M enrollments; skipped when PostgreSQL is not reachable), handoff latency, import, clicks.
bench: $(STAMP)
	$(PY) bench/send_compare.py --rounds 3
	-$(PY) bench/tick.py
	$(PY) bench/handoff_latency.py
	$(PY) bench/import_leads.py --repeat 3
	$(PY) bench/rescore.py
	$(PY) bench/click_redirect.py
	$(PY) bench/mime_writer.py
	$(PY) bench/render_mime.py
	$(PY) bench/first_touch.py

## ruff, and mypy (mypy.ini: strict on engine/ and the domain services)
lint: $(STAMP)
	$(PY) -m ruff check nurture_mail tests bench
	$(PY) -m mypy

clean:
	rm -rf $(VENV) instance .pytest_cache
