"""Transports: open a socket, write bytes, close, report errors. No formatting, framing or queue.

`base` has the `Transport` every kind derives from; `address` the URL forms and `schemes` the
table of schemes; `udp`, `unix`, `stream` (TCP, TLS, unix stream), `relp` and `failover` the
kinds; `tls` the client and server contexts; `backoff` the one reconnect policy.
"""
