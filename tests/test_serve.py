"""`manage.py serve` runs the web server and the task cluster; SIGINT stops both."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def descendants(pid: int) -> set[int]:
    """Every live process whose parent chain leads to pid (from /proc)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def test_serve_runs_web_and_cluster_and_ctrl_c_stops_both(child_env):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port), "--workers", "1"],
        cwd=ROOT,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_for(f"http://127.0.0.1:{port}/healthz") == 200
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            commands = [
                Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                for p in descendants(proc.pid)
                if Path(f"/proc/{p}/cmdline").exists()
            ]
            if any("qcluster" in c for c in commands) and any("gunicorn" in c for c in commands):
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"expected gunicorn and qcluster, saw {commands}")
        children = descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        time.sleep(0.5)
        alive = [p for p in children if Path(f"/proc/{p}").exists()]
        zombies = [p for p in alive if " Z " in Path(f"/proc/{p}/stat").read_text()]
        assert set(alive) == set(zombies), f"still running after Ctrl-C: {alive}"
        assert "Stopped." in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
