"""`python -m aibase ARGS`: what `./ai ARGS` runs (Invoke, with help for every task)."""

from aibase.cli import main

main()
