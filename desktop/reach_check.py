"""Can the provider's address be reached at all? Asked before a paid run starts.

Only a TCP connection is opened and closed: no request is sent, so it costs nothing and no
service logs it. A wrong host name, a refused port or a dead network is then told in a
second or so, instead of after the runner's backoff (some 40 s) has given up.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

#: Seconds to wait for the connection.
REACH_TIMEOUT = 3.0


def unreachable_sentence(base_url: str, timeout: float = REACH_TIMEOUT) -> str:
    """:returns: "" when ``base_url``'s host accepts a connection, else a sentence saying why not."""
    parts = urlsplit(base_url)
    host = parts.hostname
    if not host:
        return ""  # not an address this check understands: the run itself will say what is wrong
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return ""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except socket.gaierror:
        return f"{host} cannot be found (no network, or a wrong base URL)."
    except TimeoutError:
        return f"{host}:{port} does not answer within {timeout:g} s (no network, or a wrong base URL)."
    except OSError as exc:
        return f"{host}:{port} cannot be reached ({exc.strerror or exc}): check the network and the base URL."
    return ""
