"""Allow `python -m verifier` as an alias of the `verify-path` console script."""

from verifier.cli import run

run()
