"""Regenerate the README's pictures from the running product: `de06qa serve` on 127.0.0.1 over an
index of the bundled seeds, and Debian's headless Chromium on the page.

    .venv/bin/python eval/screenshots.py            # writes eval/screenshots/search.png, phone.png and compare.png

The index is built into a temporary folder (the model cache is the user's, DE06QA_CACHE_DIR).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "eval" / "screenshots"
SHOTS = {  # file: (the page's query string, window size)
    "search.png": ("q=" + quote("Hà Giang có bao nhiêu dịch vụ công toàn trình?"), "1280,1100"),
    "phone.png": ("q=" + quote("Thái Bình có bao nhiêu thẻ căn cước gắn chip?"), "412,1400"),
    "compare.png": ("q=" + quote("Tỉnh nào có nhiều dịch vụ công trực tuyến toàn trình nhất?"), "1280,1250"),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("needs Debian's chromium: apt-get install chromium")
    exe = str(Path(sys.executable).with_name("de06qa"))
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DE06QA_INDEX_DIR": f"{tmp}/index"}
        # from the repository, as a user runs it: sources read "seeds/…"
        subprocess.run([exe, "index", "seeds"], env=env, check=True, capture_output=True, cwd=ROOT)
        port = _free_port()
        server = subprocess.Popen([exe, "serve", "--port", str(port)], env=env, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(240):
                try:
                    if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                        break
                except OSError:
                    time.sleep(0.5)
            for name, (q, size) in SHOTS.items():
                subprocess.run(
                    [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
                     f"--user-data-dir={tmp}/chrome-{name}", "--hide-scrollbars", f"--window-size={size}",
                     "--virtual-time-budget=15000", f"--screenshot={OUT / name}", f"{url}/?{q}"],
                    check=True, capture_output=True, timeout=120,
                )  # fmt: skip
                print(f"wrote {OUT / name}")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
