"""``python -m ood_bench.cli``: the same command line as ``ood-bench``."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
