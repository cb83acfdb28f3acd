"""The suite runs where ROS 2 is sourced: the pytest plugins ROS installs load (or are kept out) under our pytest.

A sourced ROS 2 puts launch_testing, launch_testing_ros and launch_pytest on the path, and pytest loads
each through its `pytest11` entry point. These tests install stand-ins with the exact entry-point names
and hook signatures of the real packages (ros2/launch `launch_testing/setup.py` and
`launch_testing/pytest/hooks.py` as Humble ships them, ros2/launch_ros `launch_testing_ros`, ros2/launch
`launch_pytest/plugin.py`) as distributions on PYTHONPATH, then run pytest in a subprocess with this
repository's configuration (pyproject.toml) on a small launch_pytest-style test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Humble's launch_testing/pytest/hooks.py: the py.path `path` argument pytest 9 removed from the hookspec.
LAUNCH_TESTING_HOOKS = """
import pytest


def pytest_pycollect_makemodule(path, parent):
    return None


@pytest.hookimpl(trylast=True)
def pytest_launch_collect_makemodule(path, parent, entrypoint):
    return None


def pytest_addhooks(pluginmanager):
    from launch_testing.pytest import hookspecs
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser):
    parser.addoption("--launch-args", action="append", nargs="*", default=[], help="launch arguments")


def pytest_configure(config):
    config.addinivalue_line("markers", "launch_test: mark a generate_test_description function")
"""
LAUNCH_TESTING_SPECS = '''
import pytest


@pytest.hookspec(firstresult=True)
def pytest_launch_collect_makemodule(path, parent, entrypoint):
    """Make a launch test module."""
'''
# launch_testing_ros_pytest_entrypoint.py: a hook of launch_testing's own hookspec.
LAUNCH_ROS_ENTRY = """
def pytest_launch_collect_makemodule(module_path, parent, entrypoint):
    return None


def pytest_configure(config):
    config.addinivalue_line("markers", "rostest: mark a generate_test_description function")
"""
# launch_pytest/plugin.py: its hooks, with the signatures it declares.
LAUNCH_PYTEST_PLUGIN = """
import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "launch: mark the test as a launch test")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_fixture_setup(fixturedef, request):
    yield


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector, name, obj):
    return None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    return None


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    yield
"""
TEST_FILE = """
import pytest


@pytest.mark.launch(fixture=None)
def test_collected_with_launch_pytest_loaded():
    assert True
"""


def _distribution(site: Path, name: str, entry_points: str, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    info = site / f"{name}-0.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.0\n")
    (info / "entry_points.txt").write_text(f"[pytest11]\n{entry_points}\n")


def _ros_site(tmp: Path) -> Path:
    site = tmp / "ros_site"
    _distribution(
        site,
        "launch_testing",
        "launch_testing = launch_testing.pytest.hooks",
        {
            "launch_testing/__init__.py": "",
            "launch_testing/pytest/__init__.py": "",
            "launch_testing/pytest/hooks.py": LAUNCH_TESTING_HOOKS,
            "launch_testing/pytest/hookspecs.py": LAUNCH_TESTING_SPECS,
        },
    )
    _distribution(
        site,
        "launch_testing_ros",
        "launch_ros = launch_testing_ros_pytest_entrypoint",
        {"launch_testing_ros_pytest_entrypoint.py": LAUNCH_ROS_ENTRY},
    )
    _distribution(
        site,
        "launch_pytest",
        "launch_pytest = launch_pytest.plugin",
        {"launch_pytest/__init__.py": "", "launch_pytest/plugin.py": LAUNCH_PYTEST_PLUGIN},
    )
    return site


def _pytest(tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    tests = tmp / "tests"
    tests.mkdir(exist_ok=True)
    (tests / "test_launch_style.py").write_text(TEST_FILE)
    env = dict(os.environ, PYTHONPATH=str(_ros_site(tmp)))
    cmd = [sys.executable, "-m", "pytest", "-c", str(REPO / "pyproject.toml"), "--rootdir", str(tmp), *extra]
    return subprocess.run(
        [*cmd, str(tests)], capture_output=True, text=True, env=env, cwd=tmp, timeout=300, check=False
    )


def test_suite_loads_where_ros_plugins_are_installed(tmp_path: Path) -> None:
    """The repository's config keeps launch_testing/launch_ros out and launch_pytest in: the run passes."""
    proc = _pytest(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "1 passed" in proc.stdout


def test_without_the_block_humbles_launch_testing_aborts_the_run(tmp_path: Path) -> None:
    """The stand-in reproduces the failure seen on Humble: without the config's -p no:, nothing runs."""
    proc = _pytest(tmp_path, "-o", "addopts=")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "PluginValidationError" in out and "pytest_pycollect_makemodule" in out and "'path'" in out, out[-3000:]
    assert "passed" not in proc.stdout


def test_launch_pytest_hooks_are_valid_under_the_pinned_pytest(tmp_path: Path) -> None:
    """launch_pytest (what tests/ros use) registers with every hook validated against pytest's hookspecs."""
    site = _ros_site(tmp_path)
    code = textwrap.dedent(
        """
        import importlib, sys
        from _pytest.config import get_config
        pm = get_config().pluginmanager
        module = importlib.import_module("launch_pytest.plugin")
        pm.register(module, "launch_pytest")
        pm.check_pending()
        hooks = [h for h in vars(pm.hook).values() if hasattr(h, "get_hookimpls")]
        print("registered", sorted(h.name for h in hooks if any(i.plugin is module for i in h.get_hookimpls())))
        """
    )
    env = dict(os.environ, PYTHONPATH=str(site))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for hook in ("pytest_configure", "pytest_pycollect_makeitem", "pytest_pyfunc_call", "pytest_fixture_setup"):
        assert hook in proc.stdout
