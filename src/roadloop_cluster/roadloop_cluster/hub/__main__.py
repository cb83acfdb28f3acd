"""`python -m roadloop_cluster.hub`: the commands of `roadloop hub` without loading every other verb."""

from __future__ import annotations

import sys

import click
import typer

from roadloop_cluster.hub.cli import app
from roadloop_core.errors import RoadloopError


def main() -> None:
    command = typer.main.get_command(app)
    try:
        command.main(args=sys.argv[1:], prog_name="roadloop hub", standalone_mode=False)
    except click.exceptions.Exit as ex:
        sys.exit(ex.exit_code)
    except click.ClickException as err:
        err.show()
        sys.exit(2)
    except RoadloopError as err:
        print(f"roadloop: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
