"""`python -m ltr.cli`: the same command line as the `ltr` script."""

from ltr.cli import main

if __name__ == "__main__":  # pytest --doctest-modules imports this file too
    main()
