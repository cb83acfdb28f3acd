"""ament-style package test (run by `colcon test`): the package installs, imports, and is what it says."""

from __future__ import annotations

from pathlib import Path

from roadloop_core.package_checks import check_cli_verbs_load, check_package_xml, check_public_api_names

PACKAGE = "roadloop_hub"


def test_package_xml_matches_the_distribution() -> None:
    check_package_xml(PACKAGE, Path(__file__).resolve().parents[1])


def test_public_api_names_exist() -> None:
    check_public_api_names(PACKAGE)


def test_cli_verbs_load() -> None:
    check_cli_verbs_load(PACKAGE)
