"""The web server as a process of its own against the test database: `make web` (gunicorn, what
`make run` serves with) or runserver (`make dev`). Tests take them from the `serve` fixture."""

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import child_env, stop_process_group

ROOT = Path(__file__).resolve().parents[1]
WEB_WORKERS, WEB_THREADS = 2, 4


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_env(settings) -> dict:
    return child_env(settings, WEB_WORKERS=str(WEB_WORKERS), WEB_THREADS=str(WEB_THREADS), TORCH_THREADS="1")


def server_command(kind: str, port: int) -> list[str]:
    return {
        "make web": [
            "make",
            "--no-print-directory",
            "-s",
            "web",
            "HOST=127.0.0.1",
            f"PORT={port}",
            f"PY={sys.executable}",
        ],
        "runserver": [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
    }[kind]


class Server:
    """Started and answering /healthz, or an AssertionError with its log."""

    def __init__(self, command: list[str], env: dict, port: int, log_path: Path):
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            try:
                if urllib.request.urlopen(f"{self.url}/healthz", timeout=2).status == 200:
                    return
            except OSError:
                time.sleep(0.3)
        raise AssertionError(f"the server did not answer /healthz in 90 s\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text()[-5000:]

    def stop(self) -> None:
        stop_process_group(self.process)
