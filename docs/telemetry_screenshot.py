"""Screenshot of Rerun's web viewer for docs/telemetry.png (how it was made; not part of the package).

    pearl-robot view SESSION --viz serve:9090 &          # prints the viewer's URL
    python docs/telemetry_screenshot.py URL docs/telemetry.png

Needs Chromium's headless shell (Debian: ``apt-get install chromium-headless-shell``) and ``websockets``.
The viewer is a WebAssembly app drawn with WebGL: SwiftShader renders it without a GPU, and it takes
tens of seconds to load, so the page is captured after a real-time wait through the DevTools protocol
(``--screenshot`` alone captures at the load event, before the app has drawn anything).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import websockets

WIDTH, HEIGHT = 1600, 900


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def capture(ws_url: str, url: str, out: str, wait_s: float) -> None:
    async with websockets.connect(ws_url, max_size=1 << 28) as ws:
        ids = iter(range(1, 1 << 30))

        async def call(method: str, **params: object) -> dict:
            mid = next(ids)
            await ws.send(json.dumps({"id": mid, "method": method, "params": params}))
            while True:
                message = json.loads(await ws.recv())
                if message.get("id") == mid:
                    return message

        await call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False)
        await call("Page.navigate", url=url)
        await asyncio.sleep(wait_s)
        shot = await call("Page.captureScreenshot", format="png")
        with open(out, "wb") as handle:
            handle.write(base64.b64decode(shot["result"]["data"]))


def main(url: str, out: str, wait_s: float = 45.0) -> None:
    port = free_port()
    chrome = subprocess.Popen(
        ["chromium-headless-shell", "--no-sandbox", "--headless", f"--remote-debugging-port={port}",
         "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
         f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
                page = next(p for p in pages if p["type"] == "page")
                break
            except (OSError, StopIteration):
                if time.monotonic() > deadline:
                    raise SystemExit("chromium did not open its DevTools port") from None
                time.sleep(0.1)
        asyncio.run(capture(page["webSocketDebuggerUrl"], url, out, wait_s))
    finally:
        os.killpg(chrome.pid, signal.SIGTERM)  # the browser and its renderer, GPU and network processes
        chrome.wait(timeout=10)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(float(a) for a in sys.argv[3:4]))
