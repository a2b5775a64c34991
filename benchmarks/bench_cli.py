"""`pearl-robot bench cli --json`; extra arguments pass through (see `pearl-robot bench cli --help`)."""

from _run import run_benchmark

if __name__ == "__main__":
    run_benchmark("cli")
