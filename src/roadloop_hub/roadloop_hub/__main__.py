"""`python -m roadloop_hub`: the commands of `roadloop hub` without loading every other verb."""

from __future__ import annotations

import sys

from roadloop_core.cli.main import run_app
from roadloop_hub.cli import app


def main() -> None:
    run_app(app, "roadloop hub", sys.argv[1:])


if __name__ == "__main__":
    main()
