"""sd_notify without libsystemd: tell the service manager we are ready, reloading, stopping, alive.

Owns: the notify protocol (newline-separated KEY=VALUE datagrams to $NOTIFY_SOCKET, `@` meaning an
abstract socket) and the trio watchdog task. Everything is a no-op when NOTIFY_SOCKET is unset (run from a
terminal, or under launchd), so callers never branch on "are we under systemd".

A notification must never take the daemon down: a failed send is logged once and then only reported by
the return value (False). The socket is non-blocking, so a manager that stops reading cannot stall the
trio loop either.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog
import trio

log = structlog.get_logger("service.notify")


def _address(value: str) -> str | bytes:
    """`@name` is Linux's abstract namespace: the same name with a leading NUL byte."""
    return b"\0" + value[1:].encode() if value.startswith("@") else value


@dataclass
class Notifier:
    """One per process; hand it to the tasks that report progress. Create it with `from_env`."""

    address: str | bytes | None
    watchdog_usec: int | None = None
    _sock: socket.socket | None = field(default=None, init=False, repr=False)
    _failed: bool = field(default=False, init=False, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str], pid: int | None = None) -> Notifier:
        """WATCHDOG_PID names the process the watchdog is meant for; a child that inherited the
        variables must not ping on its parent's behalf, so a different pid disables the watchdog.
        Only path and `@abstract` sockets are supported (not systemd ≥ 253's vsock:); others are a no-op."""
        raw = env.get("NOTIFY_SOCKET", "")
        address = _address(raw) if raw and (raw.startswith(("/", "@"))) else None
        usec: int | None = None
        try:
            usec = int(env.get("WATCHDOG_USEC", "")) or None
        except ValueError:
            usec = None
        owner = env.get("WATCHDOG_PID", "")
        if owner and owner != str(pid if pid is not None else os.getpid()):
            usec = None
        return cls(address, usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between pings: half the manager's timeout, as sd_watchdog_enabled(3) advises."""
        if not self.enabled or not self.watchdog_usec or self.watchdog_usec <= 0:
            return None
        return self.watchdog_usec / 2 / 1_000_000

    def notify(self, **fields: str) -> bool:
        """Send KEY=VALUE lines in one datagram. True if sent; False if disabled or the send failed."""
        if self.address is None:
            return False
        message = "\n".join(f"{k}={v}" for k, v in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(message, self.address)
            return True
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning("notify.failed", note="further failures are not logged",
                            socket=repr(self.address), error=str(exc))
            return False

    def ready(self, status: str | None = None) -> bool:
        """READY=1, with a STATUS line in the same datagram when given (what `systemctl status` shows)."""
        if status is None:
            return self.notify(READY="1")
        return self.notify(READY="1", STATUS=" ".join(status.splitlines()))

    def reloading(self) -> bool:
        """Type=notify-reload (systemd ≥ 253) needs MONOTONIC_USEC to pair this with the later READY=1."""
        return self.notify(RELOADING="1", MONOTONIC_USEC=str(time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000))

    def stopping(self) -> bool:
        return self.notify(STOPPING="1")

    def status(self, text: str) -> bool:
        """One line shown by `systemctl status`; newlines would start a new KEY=VALUE, so they go."""
        return self.notify(STATUS=" ".join(text.splitlines()))

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG="1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


async def watchdog_loop(notifier: Notifier) -> None:
    """Ping WATCHDOG=1 every `watchdog_interval` from the trio loop itself, so a wedged loop (a blocking
    call on the trio thread, a deadlock) stops the pings and systemd restarts us. Returns at once when no
    watchdog is configured; otherwise runs until cancelled."""
    interval = notifier.watchdog_interval
    if interval is None:
        return
    while True:
        notifier.watchdog()
        await trio.sleep(interval)
