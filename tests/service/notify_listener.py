"""A stand-in for systemd's notify socket, for tests: bind, hand out NOTIFY_SOCKET, collect messages.

Reusable by the end-to-end test that runs the real daemon as a subprocess: put `listener.env` into the
child's environment and `wait_for("READY")`. On Linux each message also carries the sender's pid
(SO_PASSCRED), which is what systemd checks for NotifyAccess=main.
"""

from __future__ import annotations

import select
import shutil
import socket
import struct
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

_UCRED = struct.Struct("3i")  # pid, uid, gid


@dataclass(frozen=True)
class Message:
    fields: dict[str, str]
    pid: int | None  # sender pid when the kernel reported it
    raw: bytes


def parse(raw: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in raw.decode().split("\n"):
        if line:
            key, _, value = line.partition("=")
            fields[key] = value
    return fields


class NotifyListener:
    """`with NotifyListener() as n:` binds a datagram socket (a short path in the temp dir, because
    sun_path holds ~107 bytes; or an abstract name with abstract=True)."""

    def __init__(self, *, abstract: bool = False) -> None:
        self._dir: Path | None = None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"session-syncd-test-{uuid.uuid4().hex}"
            self.sock.bind(b"\0" + name.encode())
            self.notify_socket = "@" + name
        else:
            self._dir = Path(tempfile.mkdtemp(prefix="sdn-"))
            path = self._dir / "notify"
            self.sock.bind(str(path))
            self.notify_socket = str(path)
        if hasattr(socket, "SO_PASSCRED"):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.received: list[Message] = []

    @property
    def env(self) -> dict[str, str]:
        return {"NOTIFY_SOCKET": self.notify_socket}

    def _receive_one(self, timeout: float) -> Message | None:
        ready, _, _ = select.select([self.sock], [], [], max(timeout, 0))
        if not ready:
            return None
        raw, ancdata, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(_UCRED.size))
        pid = None
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == getattr(socket, "SCM_CREDENTIALS", -1):
                pid = _UCRED.unpack(data[:_UCRED.size])[0]
        message = Message(parse(raw), pid, raw)
        self.received.append(message)
        return message

    def drain(self) -> list[Message]:
        """Everything that has arrived so far, without waiting."""
        while self._receive_one(0) is not None:
            pass
        return list(self.received)

    def wait_for(self, key: str, value: str | None = None, timeout: float = 5.0) -> Message:
        """The first message (already received or arriving within `timeout`) carrying `key`(=`value`)."""
        def matches(m: Message) -> bool:
            return key in m.fields and (value is None or m.fields[key] == value)

        for m in self.received:
            if matches(m):
                return m
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            m = self._receive_one(remaining)
            if m is not None and matches(m):
                return m
        seen = [m.fields for m in self.received]
        raise TimeoutError(f"no {key}{'=' + value if value else ''} within {timeout}s; received {seen}")

    def close(self) -> None:
        self.sock.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> NotifyListener:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


__all__ = ["Message", "NotifyListener", "parse"]
