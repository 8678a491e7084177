"""The ``tune`` console script: the Rust CLI, run in this interpreter."""

from __future__ import annotations

import signal
import sys


def main() -> None:
    """Runs ``tune`` with this process's arguments and exits with its code."""
    from hyperfleet import _native

    # The Rust side turns SIGINT/SIGTERM into a clean stop; Python's handler would only echo it later.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(_native.cli_main(["tune", *sys.argv[1:]], sys.executable))


if __name__ == "__main__":
    main()
