"""`select` entry point (file not named select.py: that would shadow the standard library module): not built yet (issue 4)."""

import sys

if __name__ == "__main__":
    print("error: the `select` entry point is not built yet (issue 4); `embed` works now.", file=sys.stderr)
    sys.exit(2)
