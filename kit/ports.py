"""Free local ports for servers this machine starts itself (the platform's private ports, the
tests' servers)."""

from __future__ import annotations

import random
import socket

# Below the kernel's ephemeral range (32768-60999 by default). A port the kernel hands out from
# that range can be taken as the source port of any outgoing connection before the server that
# was given it binds it ("port already taken" at start-up); ports below it are never used so.
PORTS = range(20000, 32768)
_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now and that this process has not handed out before."""
    for _ in range(1000):
        port = random.choice(PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")
