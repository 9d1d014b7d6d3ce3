"""A threaded server on 127.0.0.1 (or on a Unix socket) for router tests that script a
backend byte by byte: each accepted connection runs ``handle`` in its own thread."""

from __future__ import annotations

import contextlib
import socket
import threading


class ThreadedServer:
    def __init__(self, backlog: int = 16, unix: str | None = None) -> None:
        if unix is None:
            self.listener = socket.create_server(("127.0.0.1", 0), backlog=backlog)
            self.port = self.listener.getsockname()[1]
        else:
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(unix)
            self.listener.listen(backlog)
            self.port = 0
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def handle(self, sock: socket.socket, number: int) -> None:
        """Serve the ``number``-th connection (from 1); the socket is closed after."""
        raise NotImplementedError

    def start(self) -> ThreadedServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped = True
        # A plain close leaves the port listening while accept() blocks in the thread.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _serve(self) -> None:
        while not self.stopped:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(
                target=self._run, args=(sock, self.connections), daemon=True
            ).start()

    def _run(self, sock: socket.socket, number: int) -> None:
        with sock, contextlib.suppress(OSError):
            self.handle(sock, number)


def read_request(
    sock: socket.socket, buffered: bytes = b""
) -> tuple[bytes, bytes, bytes] | None:
    """The next request on ``sock`` after the bytes already ``buffered``: its head, its
    content-length body and what was read past it; None at EOF before a whole head."""
    data = buffered
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, data = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(data) < length:
        data += sock.recv(1 << 20)
    return head, data[:length], data[length:]
