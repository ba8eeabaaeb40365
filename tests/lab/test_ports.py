"""The lab's ports: held until the server that uses them binds, and picked where the system never
hands one out on its own (lab.servers.hold_port)."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest

from lab.servers import HOST, dead_port, free_port, hold_port

EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_start() -> int:
    return int(EPHEMERAL.read_text().split()[0])


@pytest.mark.skipif(not EPHEMERAL.exists() or ephemeral_start() <= 10000,
                    reason="no room below this machine's ephemeral port range")
def test_a_held_port_lies_below_the_range_the_system_hands_out() -> None:
    """Once let go, neither an outgoing connection's source port nor a bind to port 0 can take
    it before the server that was meant to have it binds it."""
    with hold_port() as held:
        port = held.getsockname()[1]
        assert 10000 <= port < ephemeral_start()
        with pytest.raises(OSError) as taken:
            hold_port(port)
        assert taken.value.errno == errno.EADDRINUSE
    assert 10000 <= free_port() < ephemeral_start()


def test_a_dead_port_refuses_connections() -> None:
    port = dead_port()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, port), timeout=5)
