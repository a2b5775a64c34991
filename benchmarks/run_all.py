"""Run every benchmark script in this folder, one after the other, and print a JSON list of results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

if __name__ == "__main__":
    results = []
    for script in sorted(HERE.glob("bench_*.py")):
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=HERE)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        results.append(json.loads(lines[-1]) if lines else {"script": script.name, "error": proc.stderr[-2000:]})
    print(json.dumps(results, indent=2))
