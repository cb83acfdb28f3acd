"""Build the ROS 2 interface packages no PyPI wheel provides (ackermann_msgs) into a Python environment.

    python ros/build_interfaces.py [--prefix .venv] [--force]

Run by `make setup` with the workspace venv's python. The package source is ros/<pkg>/ (package.xml and
CMakeLists.txt); its .msg files are written from roadloop_core.typesys.EXTRA_MSG_DEFINITIONS, the one copy of
their text. It is configured with CMake against the venv (the ROS wheels install a ROS prefix into it: share/
for CMake configs and the ament index, lib/ for libraries), built with the PyPI rosidl generators and
installed into the venv itself, so `import ackermann_msgs.msg` works wherever the venv's rclpy does
(lib/ is on LD_LIBRARY_PATH through ros-wheels-bootstrapper, see docs/vehicle.md).

Idempotent: the inputs (package files, .msg texts, the ROS wheels' versions, Python) are hashed into a
stamp under <prefix>/.roadloop-build/; an unchanged stamp whose install still imports is a no-op.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import distributions
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGES = ("ackermann_msgs",)

# Imports the generated class and round-trips a message through its C typesupport (the libraries rclpy loads).
VERIFY = """
from rclpy.serialization import deserialize_message, serialize_message
from {pkg}.msg import {names}
for cls in ({names},):
    assert deserialize_message(serialize_message(cls()), cls) == cls()
"""


class BuildError(Exception):
    """A build step failed; the message names the step and where its log is."""


def msg_definitions(package: str) -> dict[str, str]:
    """Message name -> .msg text of `package`, from the typesystem's extra definitions."""
    from roadloop_core.typesys import EXTRA_MSG_DEFINITIONS

    prefix = f"{package}/msg/"
    defs = {name.removeprefix(prefix): text for name, text in EXTRA_MSG_DEFINITIONS.items() if name.startswith(prefix)}
    if not defs:
        raise BuildError(f"roadloop_core.typesys.EXTRA_MSG_DEFINITIONS has no {prefix}* definitions")
    return defs


def inputs_digest(package: str, defs: dict[str, str]) -> str:
    h = hashlib.sha256()
    for name in ("package.xml", "CMakeLists.txt"):
        h.update((HERE / package / name).read_bytes())
    h.update(json.dumps(defs, sort_keys=True).encode())
    ros = sorted(f"{d.metadata['Name']}=={d.version}" for d in distributions() if d.metadata["Name"].startswith("ros-"))
    h.update("\n".join(ros).encode())
    h.update(sys.version.encode())
    return h.hexdigest()


def child_env(prefix: Path) -> dict[str, str]:
    """The environment of the build tools: the venv is the ROS prefix (ament index, CMake packages)."""
    env = dict(os.environ)
    # let the venv's python set up its own LD_LIBRARY_PATH (a caller's may belong to another environment)
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    env["AMENT_PREFIX_PATH"] = os.pathsep.join([str(prefix), *filter(None, [env.get("AMENT_PREFIX_PATH")])])
    env["CMAKE_PREFIX_PATH"] = os.pathsep.join([str(prefix), *filter(None, [env.get("CMAKE_PREFIX_PATH")])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run(cmd: list[str], env: dict[str, str], log: Path, step: str) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        done = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise BuildError(f"{step} failed (exit {done.returncode}); full log: {log}\n{tail}")


def verify(prefix: Path, package: str, names: list[str], env: dict[str, str]) -> bool:
    code = VERIFY.format(pkg=package, names=", ".join(names))
    python = prefix / "bin" / "python"
    done = subprocess.run([str(python), "-c", code], env=env, capture_output=True, text=True, check=False)
    return done.returncode == 0


def build(prefix: Path, package: str, force: bool) -> str:
    defs = msg_definitions(package)
    work = prefix / ".roadloop-build" / package
    stamp = work / "stamp"
    digest = inputs_digest(package, defs)
    env = child_env(prefix)
    if not force and stamp.is_file() and stamp.read_text().strip() == digest and verify(prefix, package, [*defs], env):
        return f"{package}: up to date"
    for tool in ("cmake", "cc", "c++"):
        if shutil.which(tool) is None:
            raise BuildError(f"{package}: `{tool}` not found; building ROS interfaces needs CMake and a C/C++ compiler")
    src, bld, log = work / "src", work / "build", work / "build.log"
    shutil.rmtree(work, ignore_errors=True)
    (src / "msg").mkdir(parents=True)
    for name in ("package.xml", "CMakeLists.txt"):
        shutil.copyfile(HERE / package / name, src / name)
    for name, text in defs.items():
        (src / "msg" / f"{name}.msg").write_text(text)
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    python = prefix / "bin" / "python"
    run(
        [
            "cmake",
            "-S",
            str(src),
            "-B",
            str(bld),
            *generator,
            f"-DCMAKE_INSTALL_PREFIX={prefix}",
            f"-DCMAKE_PREFIX_PATH={prefix}",
            f"-DPython3_EXECUTABLE={python}",
            "-DCMAKE_BUILD_TYPE=Release",
            "-DBUILD_TESTING=OFF",
        ],
        env,
        log,
        f"{package}: cmake configure",
    )
    run(["cmake", "--build", str(bld), "--parallel", str(os.cpu_count() or 2)], env, log, f"{package}: cmake build")
    run(["cmake", "--install", str(bld)], env, log, f"{package}: cmake install")
    if not verify(prefix, package, [*defs], env):
        raise BuildError(f"{package}: built and installed into {prefix}, but `import {package}.msg` fails there")
    shutil.rmtree(bld)  # the install is what counts; the log stays for reference
    tmp = stamp.with_suffix(".tmp")
    tmp.write_text(digest + "\n")
    tmp.replace(stamp)
    return f"{package}: built {', '.join(defs)} into {prefix}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", type=Path, default=Path(sys.prefix), help="environment to install into")
    parser.add_argument("--force", action="store_true", help="rebuild even if the stamp says up to date")
    args = parser.parse_args(argv)
    prefix = args.prefix.resolve()
    try:
        for package in PACKAGES:
            print(build(prefix, package, args.force))
    except BuildError as err:
        print(f"build_interfaces: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
