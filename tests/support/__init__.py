"""Test support shared by the tests and the benchmarks (never installed, never imported by a product path).

Importable as `tests.support` from the repository root: pytest puts the root on sys.path
(`pythonpath` in pyproject.toml) and `python -m benchmarks` runs from it.
"""
