"""Helpers shared by the tests (never collected as tests): real peers, loopback collectors,
numbered streams, the documentation's examples."""
