"""A TCP relay in front of a real valkey-server that takes Redis away at a chosen point: between two commands of
one operation, which stopping the server cannot time.

`CutRelay(port)` relays its own loopback port to the server's. After `cut_after(marker)`, the command carrying
`marker` goes through and its answer comes back; from then on, a connection that sends anything more is closed
without it reaching the server, and new connections are closed at once, until `heal`. Connections are only ever
closed when the client sends, never under an answer it is reading.
"""

from __future__ import annotations

import selectors
import socket
import threading
from types import TracebackType

__all__ = ["CutRelay"]


class CutRelay:
    """Relays 127.0.0.1:`port` to the server on `upstream_port`; `url` is its redis:// URL."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._lock = threading.Lock()
        self._marker: bytes | None = None
        self._carrier: socket.socket | None = None  # the client whose command carrying the marker went on
        self._cut = False
        self.was_cut = threading.Event()
        self._peer: dict[socket.socket, socket.socket] = {}
        self._clients: set[socket.socket] = set()
        self._tail: dict[socket.socket, bytes] = {}  # each client's last bytes: a marker split between reads
        self._sel = selectors.DefaultSelector()
        self._thread = threading.Thread(target=self._loop, name="cut-relay", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cut_after(self, marker: bytes) -> None:
        with self._lock:
            self._marker, self._carrier, self._cut = marker, None, False
            self.was_cut.clear()

    def heal(self) -> None:
        with self._lock:
            self._marker, self._carrier, self._cut = None, None, False

    def close(self) -> None:
        self._wake_w.send(b"x")
        self._thread.join(10)
        self._wake_w.close()

    def __enter__(self) -> CutRelay:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def _drop(self, sock: socket.socket) -> None:
        for s in (sock, self._peer.pop(sock, None)):
            if s is None:
                continue
            self._peer.pop(s, None)
            self._clients.discard(s)
            self._tail.pop(s, None)
            self._sel.unregister(s)
            s.close()

    def _relay(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(sock)
            return
        peer = self._peer[sock]
        with self._lock:
            if sock in self._clients:
                if self._cut:
                    self._drop(sock)
                    return
                if self._marker is not None and self._carrier is None:
                    seen = self._tail.get(sock, b"") + data
                    self._carrier = sock if self._marker in seen else None
                    self._tail[sock] = seen[-len(self._marker):]
            elif self._carrier is not None and peer is self._carrier:  # its answer: what is sent next is cut
                self._cut = True
                self.was_cut.set()
        try:
            peer.sendall(data)
        except OSError:
            self._drop(sock)

    def _accept(self) -> None:
        client, _ = self._listener.accept()
        with self._lock:
            cut = self._cut
        if cut:
            client.close()
            return
        upstream = socket.create_connection(("127.0.0.1", self._upstream))
        self._peer[client], self._peer[upstream] = upstream, client
        self._clients.add(client)
        for s in (client, upstream):
            self._sel.register(s, selectors.EVENT_READ)

    def _loop(self) -> None:
        self._sel.register(self._listener, selectors.EVENT_READ)
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        try:
            while True:
                for key, _ in self._sel.select():
                    sock = key.fileobj
                    if sock is self._wake_r:
                        return
                    if sock is self._listener:
                        self._accept()
                    else:
                        assert isinstance(sock, socket.socket)
                        self._relay(sock)
        finally:
            for s in list(self._peer):
                if s in self._peer:
                    self._drop(s)
            self._sel.close()
            self._listener.close()
            self._wake_r.close()
