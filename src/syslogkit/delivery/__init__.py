"""Delivery: how encoded frames reach a transport, and what happens when they cannot.

`base` has the `Delivery` protocol, `Stats` and error reporting; `sync` writes in the caller's
thread; `background` is the queue's writer thread, `caller` what application threads do with the
queue (admission, waits, notices); `confirm` decides when a written record is delivered (RELP
answers, the kernel's `SIOCOUTQ` ledger in `outq`, or at once for datagrams); `spool` keeps
records on disk, in segment files whose format is `segment`.
"""
