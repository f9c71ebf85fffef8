"""Driving headless chromium through the DevTools protocol over `--remote-debugging-pipe`: no extra package.

Chromium reads commands on its fd 3 and writes answers and events on its fd 4,
each a JSON message ended by a NUL byte. `Browser` opens one page and lets a
test type into it, click, wait for the load event the click causes, and read
the DOM and the cookies, as a person at the browser would.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

TIMEOUT_S = 30.0


class Browser:
    """Headless chromium with one page; `with Browser(binary, profile) as b: b.go(url) ...`."""

    def __init__(self, binary: str, profile: Path) -> None:
        self._to_chrome_r, self._to_chrome_w = os.pipe()
        self._from_chrome_r, self._from_chrome_w = os.pipe()
        to_r, from_w = self._to_chrome_r, self._from_chrome_w

        def fds() -> None:
            # In the child, before exec: the pipe ends where chromium looks for them. dup2 makes them
            # inheritable; every other descriptor of ours is not (PEP 446), so close_fds=False leaks nothing.
            # Copies first, so neither end is overwritten by the other's dup2 whatever its number.
            a, b = os.dup(to_r), os.dup(from_w)
            os.dup2(a, 3)
            os.dup2(b, 4)
            os.set_inheritable(3, True)  # dup2 onto itself would leave close-on-exec set
            os.set_inheritable(4, True)

        self.proc = subprocess.Popen(
            [binary, "--headless", "--disable-gpu", "--no-sandbox", "--remote-debugging-pipe",
             f"--user-data-dir={profile}", "about:blank"],
            close_fds=False, preexec_fn=fds, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_r)
        os.close(from_w)
        self._next = 0
        self._lock = threading.Condition()
        self._answers: dict[int, dict[str, Any]] = {}
        self._events: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True, name="cdp-reader").start()
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Page.enable", session=self.session)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *_: object) -> None:
        try:
            self.send("Browser.close")
        except (OSError, TimeoutError, RuntimeError):
            pass
        try:
            self.proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome_w)

    def _read(self) -> None:
        buffer = b""
        with os.fdopen(self._from_chrome_r, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                buffer += chunk
                while b"\0" in buffer:
                    raw, buffer = buffer.split(b"\0", 1)
                    message = json.loads(raw)
                    with self._lock:
                        if "id" in message:
                            self._answers[message["id"]] = message
                        else:
                            self._events.append(message)
                        self._lock.notify_all()

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """One command; its result (raises RuntimeError with the protocol's error)."""
        with self._lock:
            self._next += 1
            n = self._next
        message: dict[str, Any] = {"id": n, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_chrome_w, json.dumps(message).encode() + b"\0")
        with self._lock:
            if not self._lock.wait_for(lambda: n in self._answers, TIMEOUT_S):
                raise TimeoutError(f"no answer to {method} in {TIMEOUT_S} s")
            answer = self._answers.pop(n)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited when it is a promise)."""
        result = self.send(
            "Runtime.evaluate", session=self.session, expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def loaded_after(self, action: Any) -> None:
        """Run `action()` (a navigation, a click that submits a form) and wait for the page it loads."""
        with self._lock:
            seen = len(self._events)
        action()
        with self._lock:
            done = self._lock.wait_for(
                lambda: any(e.get("method") == "Page.loadEventFired" for e in self._events[seen:]), TIMEOUT_S
            )
        assert done, "the page did not load"

    def go(self, url: str) -> None:
        self.loaded_after(lambda: self.send("Page.navigate", session=self.session, url=url))

    def until(self, expression: str, what: str) -> Any:
        """The value of `expression` once it is truthy: for what the page's script renders after it loads."""
        deadline = time.monotonic() + TIMEOUT_S
        while not (value := self.evaluate(expression)):
            assert time.monotonic() < deadline, f"the page never showed {what}"
            time.sleep(0.05)  # the DOM is polled: the page's script announces nothing we could wait on
        return value

    def cookies(self) -> dict[str, str]:
        """Every cookie the browser holds (HttpOnly ones too), by name."""
        return {c["name"]: c["value"] for c in self.send("Storage.getCookies")["cookies"]}
