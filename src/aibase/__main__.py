"""`python -m aibase ARGS`: what `./ai ARGS` runs (Invoke, with help for every task).

Top level, the program's entry: nothing imports it.
May import: cli.
"""

from aibase.cli import main

main()
