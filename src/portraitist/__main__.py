"""`python -m portraitist` is the `portraitist` command."""

from portraitist.cli import main

main()
