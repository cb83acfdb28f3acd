"""The training rank processes below a launcher (torchrun or `roadloop train`), found by their entry module."""

from __future__ import annotations

import psutil

RANK_MODULE = "roadloop_cluster.train.train"


def rank_processes(children: list[psutil.Process]) -> list[psutil.Process]:
    """Those of `children` that run a training rank (ones that exited meanwhile are left out)."""
    found = []
    for p in children:
        try:
            if RANK_MODULE in p.cmdline():
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found
