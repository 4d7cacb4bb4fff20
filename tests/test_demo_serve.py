"""`make demo` ends by serving the dashboards on the demo's data, with a login it prints."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.dashboard_server import free_port

pytestmark = pytest.mark.slow


def test_demo_serves_the_dashboards_with_a_printed_login(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    env["COLUMNS"] = "100"
    demo = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "demo", "--serve", "--port", str(port),
         "--data-dir", str(tmp_path / "demo")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert demo.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 300
    try:
        while not any(line.strip().startswith("password:") for line in lines):
            line = demo.stdout.readline()
            assert line or demo.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            lines.append(line)
        text = "".join(lines)
        url = re.search(r"Dashboards: (http://\S+)", text)
        password = re.search(r"password: (\S+)", text)
        assert url and password and url.group(1) == f"http://127.0.0.1:{port}/"
        with httpx.Client(base_url=url.group(1), timeout=30) as client:
            for _ in range(100):  # uvicorn binds just after the line is printed
                try:
                    client.get("/api/v1/health")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            assert client.get("/agent").status_code == 303
            login = {"name": "operator", "password": password.group(1)}
            assert client.post("/api/v1/login", json=login).status_code == 200
            page = client.get("/operator")
            assert page.status_code == 200 and "Dead-letter queue" in page.text
            assert client.get("/marketing").status_code == 403
            status = client.get("/api/v1/status").json()
            assert status["posts"] > 1000
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(30)
