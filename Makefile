# make setup | run | test | bench | deploy   (PORT=/dev/ttyUSB0 for a real board)
# BOARD=esp32 (MPY=1.24 ... 1.28): the virtual board's ESP32 twin instead of the unix personality
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?=
HOST_IP ?=
BOARD ?= unix
MPY ?= 1.27
PYTEST_ARGS ?=

.PHONY: setup run test bench deploy clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt tools/heap32/package-lock.json
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	npm ci --prefix tools/heap32 --no-audit --no-fund --loglevel=error
	touch $@

# The virtual board by default; with PORT=, deploy to the real board and watch it.
run: setup
ifeq ($(PORT),)
	$(PY) tools/vboard.py --board $(BOARD) --mpy $(MPY)
else
	$(PY) tools/deploy.py --port $(PORT)
endif

test: setup
	$(PY) -m pytest --board $(BOARD) --mpy $(MPY) $(if $(PORT),--port $(PORT)) $(if $(HOST_IP),--host-ip $(HOST_IP)) $(PYTEST_ARGS)

bench: setup
	$(PY) tools/bench --board $(BOARD) --mpy $(MPY) $(if $(PORT),--port $(PORT))

deploy: setup
	$(if $(PORT),,$(error make deploy needs PORT=/dev/ttyUSB0 (the board's USB port)))
	$(PY) tools/deploy.py --port $(PORT)

clean:
	rm -rf build .vboard
