"""Yes/no questions before anything that moves or resets hardware."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


def terminal_confirm(yes: bool) -> Callable[[str], bool]:
    """``yes``: every answer is yes. Otherwise ask y/N on the terminal (on stderr, so that stdout stays
    clean for --json); without a terminal, or under CI=true, the answer is no."""

    def confirm(question: str) -> bool:
        if yes:
            return True
        if os.environ.get("CI", "").lower() in ("1", "true", "yes") or not sys.stdin.isatty():
            print(f"{question} -> no (nobody to ask: --yes answers yes)", file=sys.stderr)
            return False
        print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
        return sys.stdin.readline().strip().lower() in ("y", "yes")

    return confirm
