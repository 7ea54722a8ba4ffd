"""The HTTP transport of :class:`~cutkit.online.judges.http.OpenAICompatibleJudge`: one deadline
per request that no read outlives (a watchdog shuts the request's sockets down), and the
Retry-After header read as seconds."""

from __future__ import annotations

import contextlib
import math
import re
import socket
import threading
import time
import urllib.request
from email.utils import parsedate_to_datetime

_DELTA_SECONDS = re.compile(r"\d+(?:\.\d*)?")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds (digits, a decimal fraction
    allowed) or an HTTP date (one in the past: 0). None, so that the caller falls back to its
    exponential backoff, for an absent or unreadable value: words, a sign (``-5``), ``nan``,
    ``inf``, an exponent, or a number too large to be finite. Capping a huge but valid wait is the
    caller's business (``max_retry_after``)."""
    if not value or not value.strip():
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    try:
        seconds = parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None


class RequestDeadline:
    """One request's deadline, covering connect, headers and the whole body: a watchdog timer
    shuts the request's sockets down when it passes, so no read (however slowly the server
    trickles bytes) outlives it."""

    def __init__(self, seconds: float):
        self.seconds, self.end = seconds, time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return max(self.end - time.monotonic(), 0.001)

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def cancel(self) -> None:
        self._timer.cancel()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _watched(connection_class: type, deadline: RequestDeadline) -> type:
    """``connection_class`` whose sockets ``deadline`` watches, with the time left as timeout."""

    class Watched(connection_class):
        def __init__(self, *args, **kwargs):
            kwargs["timeout"] = deadline.remaining()
            super().__init__(*args, **kwargs)

            def create_connection(*args, **kwargs):
                sock = socket.create_connection(*args, **kwargs)
                deadline.watch(sock)
                return sock

            self._create_connection = create_connection

    return Watched


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: RequestDeadline):
        super().__init__()
        self._deadline = deadline

    def do_open(self, http_class, req, **kwargs):
        return super().do_open(_watched(http_class, self._deadline), req, **kwargs)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: RequestDeadline):
        super().__init__()
        self._deadline = deadline

    def do_open(self, http_class, req, **kwargs):
        return super().do_open(_watched(http_class, self._deadline), req, **kwargs)


def deadline_opener(deadline: RequestDeadline) -> urllib.request.OpenerDirector:
    """A urllib opener whose HTTP and HTTPS connections ``deadline`` watches."""
    return urllib.request.build_opener(_HTTPHandler(deadline), _HTTPSHandler(deadline))
