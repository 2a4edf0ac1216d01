"""`tune` entry point: not built yet (issue 3)."""

import sys

if __name__ == "__main__":
    print("error: the `tune` entry point is not built yet (issue 3); `embed` works now.", file=sys.stderr)
    sys.exit(2)
