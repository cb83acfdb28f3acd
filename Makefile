# roadloop — the two commands: `make demo` (the fleet loop on embedded defaults) and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.roadloop-stamp
PACKAGES := src/roadloop_core src/roadloop_hub src/roadloop_vehicle src/roadloop_sim src/roadloop_cluster
# mypy ignores site-packages without py.typed: rclpy-intellisense's copy of rclpy's sources goes on MYPYPATH
# (linked into a throw-away folder: mypy refuses site-packages itself on MYPYPATH)
RCLPY_SRC = $(shell $(BIN)/python -c "import importlib.util,os;s=importlib.util.find_spec('rclpy');print(os.path.dirname(s.origin) if s else '')" 2>/dev/null)
export SDL_VIDEODRIVER := offscreen
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup test lint typecheck pytest soak colcon bench demo clean help

help:
	@echo "make demo   - run the whole fleet loop on embedded defaults (report in demo-out/)"
	@echo "make test   - set up .venv, then ruff, mypy --strict, pytest, colcon build + test"
	@echo "make bench  - benchmarks, one line per figure with side-by-side ratios"
	@echo "make soak   - the long fault-injection sweeps (bags: flips/truncations, recorder SIGKILLs; fleet: bridge/hub SIGKILLs)"
	@echo "make setup  - only create/update .venv with the pinned dependencies"

# Idempotent: re-runs only when the pins or a package's setup.py change.
$(STAMP): requirements.txt $(addsuffix /setup.py,$(PACKAGES))
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps $(addprefix -e ,$(PACKAGES))
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(BIN)/ruff check src tests benchmarks launch
	$(BIN)/ruff format --check src tests benchmarks launch

# The node layer (roadloop_vehicle.ros) is checked against rclpy's real API; --follow-imports=silent keeps
# rclpy's own partly-annotated sources from being reported (only the packages named here are).
typecheck: setup
	d=$$(mktemp -d) && trap 'rm -rf $$d' EXIT && \
	if [ -n "$(RCLPY_SRC)" ]; then ln -s "$(RCLPY_SRC)" $$d/rclpy; else echo "rclpy sources missing: pip install rclpy-intellisense" >&2; exit 1; fi && \
	MYPYPATH=$$d $(BIN)/mypy --strict --follow-imports=silent src/roadloop_core/roadloop_core src/roadloop_hub/roadloop_hub \
	    src/roadloop_vehicle/roadloop_vehicle src/roadloop_sim/roadloop_sim src/roadloop_cluster/roadloop_cluster

pytest: setup
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -q tests

# The long fault-injection sweeps (marker `soak`, deselected in `make test`); each prints tried/survived.
soak: setup
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -q -s -m soak tests

# Prove the tree builds the ROS way, in a throw-away folder: colcon build, then colcon test
# (each package's ament-style test/ via pytest); on failure the failing tests are listed.
COLCON = PATH=$(abspath $(BIN)):$$PATH $(BIN)/colcon --log-base $$d/log
colcon: setup
	d=$$(mktemp -d) && trap 'rm -rf $$d' EXIT && \
	$(COLCON) build --base-paths src --build-base $$d/build --install-base $$d/install && \
	{ $(COLCON) test --base-paths src --build-base $$d/build --install-base $$d/install \
	    --return-code-on-test-failure || { $(COLCON) test-result --verbose --test-result-base $$d/build; exit 1; }; } && \
	$(COLCON) test-result --test-result-base $$d/build

test: lint typecheck pytest colcon

bench: setup
	$(BIN)/python -m benchmarks

demo: setup
	$(BIN)/roadloop loop --config config/loop.yaml --out demo-out

clean:
	rm -rf build install log demo-out bench-out
