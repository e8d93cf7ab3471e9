"""The sans-I/O protocol core, shared by the sender, the collector and the tests.

Bytes and values in, bytes and values out: no sockets, threads, clocks or environment reads
(time and hostname are passed in). Imports nothing of syslogkit outside this package.
"""
