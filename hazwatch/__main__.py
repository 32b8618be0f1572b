"""`python -m hazwatch`: the same as the `hazwatch` console script."""

from hazwatch.cli import main

main()
