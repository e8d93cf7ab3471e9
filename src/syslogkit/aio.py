"""The public home of `AsyncSyslogHandler` (`syslogkit.aio.AsyncSyslogHandler` in dictConfig)."""

from syslogkit.sender.aio import AsyncSyslogHandler

__all__ = ["AsyncSyslogHandler"]
