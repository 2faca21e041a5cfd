"""``python -m ood_bench``: the same command line as ``ood-bench``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
