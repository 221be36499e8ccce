"""`python -m de06qa …` runs the same command as `de06qa …`."""

from de06qa.cli import main

main()
