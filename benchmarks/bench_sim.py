"""`pearl-robot bench sim --json`; extra arguments pass through (see `pearl-robot bench sim --help`)."""

from _run import run_benchmark

if __name__ == "__main__":
    run_benchmark("sim")
