"""python -m server: the same as `segprune serve`."""

from server.cli import main

main()
