"""`python -m roadloop_vehicle.bridge`: the commands of `roadloop bridge` without loading every other verb."""

from __future__ import annotations

import sys

from roadloop_core.cli.main import run_app
from roadloop_vehicle.bridge.cli import app


def main() -> None:
    run_app(app, "roadloop bridge", sys.argv[1:])


if __name__ == "__main__":
    main()
