"""`pearl-robot bench sim2real --json`; extra arguments pass through (see `pearl-robot bench sim2real --help`).

Checks the issue's targets on the realistic virtual arm (held-out dynamics, hidden offsets and a
reversed joint, 2-tick noise, a 16 ms stock adapter, a scripted operator): calibration offsets within
1 tick and no direction wrong, the latency within 10 ms, the validation RMS within 2x the encoder-noise
floor, and a replay on the identified model closer to the recording than on the nominal one. Exits 1
if a target is missed.
"""

import sys

from _run import run_benchmark

if __name__ == "__main__":
    result = run_benchmark("sim2real")
    sys.exit(0 if all(result["targets"].values()) else 1)
