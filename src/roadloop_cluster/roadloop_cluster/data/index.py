"""Reading a dataset's index.json (the dataset exists iff its index does)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from roadloop_cluster.data.build import FORMAT
from roadloop_cluster.data.errors import DataError

__all__ = ["read_index"]


def read_index(root: Path) -> dict[str, Any]:
    """DATASET/index.json as a dict; a missing, unreadable or foreign index is a DataError naming it."""
    path = root / "index.json"
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no dataset here (index.json is written last; a build may be unfinished)") from None
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: unreadable dataset index: {err}") from err
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise DataError(f"{path}: format is {index.get('format')!r}, expected {FORMAT!r}")
    for key in ("splits", "stats", "sources", "observation", "label"):
        if key not in index:
            raise DataError(f"{path}: field '{key}' missing")
    return index
