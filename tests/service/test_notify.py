"""sd_notify against a real AF_UNIX datagram socket (path and abstract), and the trio watchdog task."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest
import structlog.testing
import trio

from notify_listener import NotifyListener
from service.notify import Notifier, watchdog_loop

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets are Linux-only")


@pytest.fixture(params=[False, pytest.param(True, marks=linux_only)], ids=["path", "abstract"])
def listener(request: pytest.FixtureRequest):
    with NotifyListener(abstract=request.param) as n:
        yield n


def test_lifecycle_messages_arrive(listener: NotifyListener) -> None:
    n = Notifier.from_env(listener.env)
    assert n.ready() and n.status("syncing 3 sessions\nsecond line") and n.stopping()
    assert listener.wait_for("READY").fields == {"READY": "1"}
    assert listener.wait_for("STATUS").fields == {"STATUS": "syncing 3 sessions second line"}
    assert listener.wait_for("STOPPING", "1")
    n.close()


@pytest.mark.skipif(not hasattr(socket, "SO_PASSCRED"), reason="sender credentials need SO_PASSCRED (Linux)")
def test_messages_come_from_this_process(listener: NotifyListener) -> None:
    """NotifyAccess=main: systemd only accepts datagrams whose sender pid is the main pid."""
    Notifier.from_env(listener.env).ready()
    assert listener.wait_for("READY").pid == os.getpid()


def test_reloading_carries_a_monotonic_timestamp(listener: NotifyListener) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    Notifier.from_env(listener.env).reloading()
    fields = listener.wait_for("RELOADING", "1").fields
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert before <= int(fields["MONOTONIC_USEC"]) <= after


def test_watchdog_loop_pings_from_trio(listener: NotifyListener) -> None:
    n = Notifier.from_env({**listener.env, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": str(os.getpid())})
    assert n.watchdog_interval == pytest.approx(0.05)

    async def main() -> None:
        with trio.move_on_after(0.4):
            await watchdog_loop(n)

    trio.run(main)
    pings = [m for m in listener.drain() if m.fields == {"WATCHDOG": "1"}]
    assert 4 <= len(pings) <= 10, len(pings)


def test_a_wedged_trio_loop_stops_pinging(listener: NotifyListener) -> None:
    """The point of pinging from the loop: a blocking call on the trio thread silences the watchdog."""
    n = Notifier.from_env({**listener.env, "WATCHDOG_USEC": "40000"})  # a ping every 20 ms
    counts: dict[str, int] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watchdog_loop, n)
            await trio.sleep(0.1)
            counts["before"] = len(listener.drain())
            time.sleep(0.3)  # wedge the loop: 15 intervals without a chance to ping
            counts["wedged"] = len(listener.drain()) - counts["before"]
            await trio.sleep(0.1)
            counts["after"] = len(listener.drain()) - counts["before"] - counts["wedged"]
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert counts["before"] >= 3 and counts["wedged"] == 0 and counts["after"] >= 3, counts


def test_without_notify_socket_everything_is_a_no_op() -> None:
    n = Notifier.from_env({"WATCHDOG_USEC": "100000"})
    assert not n.enabled and n.watchdog_interval is None
    assert not any([n.ready(), n.reloading(), n.stopping(), n.status("x"), n.watchdog()])

    async def main() -> None:
        with trio.fail_after(1):
            await watchdog_loop(n)  # returns at once

    trio.run(main)


def test_watchdog_meant_for_another_process_is_ignored(listener: NotifyListener) -> None:
    n = Notifier.from_env({**listener.env, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": str(os.getpid() + 1)})
    assert n.enabled and n.watchdog_interval is None


@pytest.mark.parametrize("usec", ["", "0", "junk", "-5"])
def test_no_or_bad_watchdog_usec_means_no_watchdog(listener: NotifyListener, usec: str) -> None:
    assert Notifier.from_env({**listener.env, "WATCHDOG_USEC": usec}).watchdog_interval is None


def test_send_failure_is_swallowed_and_logged_once(tmp_path: Path) -> None:
    n = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert n.enabled
    with structlog.testing.capture_logs() as logs:
        assert n.ready() is False
        assert n.watchdog() is False  # still no exception the second time
    assert [e["log_level"] for e in logs] == ["warning"]
    assert "nobody-listens" in logs[0]["socket"]
