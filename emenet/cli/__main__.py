"""`python -m emenet.cli`: the `emenet` command."""
import sys

from emenet.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
