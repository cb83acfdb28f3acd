# roadloop — the two commands: `make demo` (the fleet loop on embedded defaults) and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.roadloop-stamp
ROS_STAMP := $(VENV)/.roadloop-ros-interfaces-stamp
PACKAGES := src/roadloop_core src/roadloop_hub src/roadloop_vehicle src/roadloop_sim src/roadloop_cluster
export SDL_VIDEODRIVER := offscreen
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup test lint typecheck pytest soak colcon bench demo clean help

help:
	@echo "make demo   - run the whole fleet loop on embedded defaults (report in demo-out/)"
	@echo "make test   - set up .venv, then ruff, mypy --strict, pytest, colcon build + test"
	@echo "make bench  - benchmarks, one line per figure with side-by-side ratios"
	@echo "make soak   - the long fault-injection sweeps (bags: flips/truncations, recorder SIGKILLs)"
	@echo "make setup  - only create/update .venv with the pinned dependencies"

# Idempotent: re-runs only when the pins or a package's setup.py change. ROS 2 Jazzy (rclpy, Fast DDS, the message
# packages, the rosidl generators) comes from PyPI wheels in requirements.txt. rclpy-intellisense, pinned before
# them, wrote an older rclpy's sources into the same site-packages/rclpy/: uninstalling it deletes files the real
# rclpy shares, so the real one is reinstalled right after.
PIP := $(BIN)/python -m pip --disable-pip-version-check
$(STAMP): requirements.txt $(addsuffix /setup.py,$(PACKAGES))
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	if $(PIP) show -q rclpy-intellisense 2>/dev/null; then $(PIP) uninstall -q -y rclpy-intellisense && \
	  $(PIP) install -q --no-deps --force-reinstall $$(grep -E '^ros-rclpy==' requirements.txt); fi
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps $(addprefix -e ,$(PACKAGES))
	touch $(STAMP)

# ackermann_msgs (no PyPI wheel) generated from its .msg text with the rosidl generators and built into the venv;
# the script keeps its own input hash, so a rerun with nothing changed is a no-op.
$(ROS_STAMP): requirements.txt ros/build_interfaces.py $(wildcard ros/*/package.xml ros/*/CMakeLists.txt) \
		src/roadloop_core/roadloop_core/typesys.py | $(STAMP)
	$(BIN)/python ros/build_interfaces.py --prefix $(VENV)
	touch $(ROS_STAMP)

setup: $(STAMP) $(ROS_STAMP)

lint: setup
	$(BIN)/ruff check src tests benchmarks launch ros
	$(BIN)/ruff format --check src tests benchmarks launch ros

# The node layer (roadloop_vehicle.ros) is checked against the installed rclpy, which ships its sources and py.typed.
typecheck: setup
	$(BIN)/mypy --strict src/roadloop_core/roadloop_core src/roadloop_hub/roadloop_hub \
	    src/roadloop_vehicle/roadloop_vehicle src/roadloop_sim/roadloop_sim src/roadloop_cluster/roadloop_cluster ros

pytest: setup
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -q tests

# The long fault-injection sweeps (marker `soak`, deselected in `make test`); each prints tried/survived.
soak: setup
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -q -s -m soak tests

# Prove the tree builds the ROS way, in a throw-away folder: colcon build, the installed layout (launch
# files and config under share/roadloop_vehicle, resolved there at run time), then colcon test
# (each package's ament-style test/ via pytest); on failure the failing tests are listed.
COLCON = PATH=$(abspath $(BIN)):$$PATH $(BIN)/colcon --log-base $$d/log
colcon: setup
	d=$$(mktemp -d) && trap 'rm -rf $$d' EXIT && \
	$(COLCON) build --base-paths src --build-base $$d/build --install-base $$d/install && \
	$(BIN)/python tests/support/check_colcon_install.py $$d/install && \
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
