"""`pearl-robot bench serial --json`; extra arguments pass through (see `pearl-robot bench serial --help`).

Checks the issue's targets: one control-cycle transaction (the state read, a FAST SYNC READ where the
servos have it, + SYNC WRITE, all joints) within 2x a raw pty exchange of the same bytes, the client's
whole cycle CPU within the raw exchange, a 200-cycle episode with 1% of the status packets corrupted
that finishes without a safe stop with every corruption counted, the late_replies scenario (a 16 ms
stock adapter): no stale state without a flag, no EEPROM write when the values are set, and rate_500hz
(a 500 Hz loop on a bus paced at 4 Mbps): at most 1% of the cycles missed. Exits 1 if a target is missed.
"""

import sys

from _run import run_benchmark

if __name__ == "__main__":
    result = run_benchmark("serial")
    sys.exit(0 if all(result["targets"].values()) else 1)
