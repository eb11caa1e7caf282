"""`python -m pipelines <command>`: the command line lives in pipelines/cli (its package
docstring says why every command leaves with ``os._exit``)."""

from pipelines.cli import main

if __name__ == "__main__":
    main()
