"""`pearl-robot bench loop --json`; extra arguments pass through (see `pearl-robot bench loop --help`)."""

from _run import run_benchmark

if __name__ == "__main__":
    run_benchmark("loop")
