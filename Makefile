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

.PHONY: setup test lint typecheck pytest pytest-numpy1 soak colcon bench demo clean help

help:
	@echo "make demo   - run the whole fleet loop on embedded defaults (report in demo-out/)"
	@echo "make test   - set up .venv, then ruff, mypy --strict, pytest (+ vehicle side on numpy 1.26), colcon build + test"
	@echo "make bench  - benchmarks, one line per figure with side-by-side ratios"
	@echo "make soak   - the long fault-injection sweeps (bags: flips/truncations, recorder SIGKILLs; fleet: bridge/hub SIGKILLs)"
	@echo "make setup  - only create/update .venv with the pinned dependencies"
	@echo "make pytest-numpy1 - the vehicle-side tests on numpy 1.26 (Jazzy's apt numpy) in .venv-numpy1"

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

# The vehicle side (roadloop_core + roadloop_vehicle) on numpy 1.26, the numpy ROS 2 Jazzy's Python has on Ubuntu
# 24.04, in its own small environment (requirements-vehicle-numpy1.txt, no ROS wheels: the PyPI ones are built
# against numpy 2). Python 3.12 (Jazzy's) where there is one, else the workspace venv's interpreter. Tests that need
# what this environment leaves out (rclpy, the hub, the simulator) carry `@pytest.mark.needs(...)` and skip here
# (ROADLOOP_TEST_SIDE=vehicle); everywhere else a missing module fails them.
NP1_VENV := .venv-numpy1
NP1_STAMP := $(NP1_VENV)/.roadloop-stamp
NP1_PY ?= $(firstword $(foreach p,python3.12 $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12),\
	$(shell $(p) -c 'import sys; print(sys.executable)' 2>/dev/null)) $(abspath $(BIN)/python))
$(NP1_STAMP): requirements-vehicle-numpy1.txt src/roadloop_core/setup.py src/roadloop_vehicle/setup.py | $(STAMP)
	test -x $(NP1_VENV)/bin/python || $(NP1_PY) -m venv $(NP1_VENV)
	$(NP1_VENV)/bin/python -m pip --disable-pip-version-check install -q -r requirements-vehicle-numpy1.txt
	$(NP1_VENV)/bin/python -m pip --disable-pip-version-check install -q --no-deps -e src/roadloop_core -e src/roadloop_vehicle
	$(NP1_VENV)/bin/python -m pip --disable-pip-version-check check
	touch $(NP1_STAMP)

pytest-numpy1: $(NP1_STAMP)
	$(NP1_VENV)/bin/python -c 'import sys, numpy; print("vehicle side on Python", sys.version.split()[0], "numpy", numpy.__version__); assert numpy.__version__.startswith("1.26")'
	PATH=$(abspath $(NP1_VENV)/bin):$$PATH ROADLOOP_TEST_SIDE=vehicle $(NP1_VENV)/bin/python -m pytest -q \
	    tests/roadloop_core tests/roadloop_vehicle

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

test: lint typecheck pytest pytest-numpy1 colcon

bench: setup
	$(BIN)/python -m benchmarks

demo: setup
	$(BIN)/roadloop loop --config config/loop.yaml --out demo-out

clean:
	rm -rf build install log demo-out bench-out
