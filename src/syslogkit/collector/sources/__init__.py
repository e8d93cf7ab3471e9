"""The collector's listeners: `stream` (TCP and TLS), `relp` (RELP, also over TLS), `udp`.

Each turns what arrives into records through its listener's `Decoder` (`collector.decode`) and
submits them to the `Pipeline`; `base` has what they share (the `Listener` base, peer names).
"""

from .base import Listener
from .relp import RelpConnection
from .stream import StreamConnection, StreamListener
from .udp import UdpListener, stop_all, udp_drops

__all__ = [
    "Listener",
    "RelpConnection",
    "StreamConnection",
    "StreamListener",
    "UdpListener",
    "stop_all",
    "udp_drops",
]
