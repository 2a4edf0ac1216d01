"""`main` entry point: not built yet (issue 4)."""

import sys

if __name__ == "__main__":
    print("error: the `main` entry point is not built yet (issue 4); `embed` works now.", file=sys.stderr)
    sys.exit(2)
