"""The web UI over a syslogkit store: search, filters, a histogram, a live tail, one message
whole; its JSON and Server-Sent-Events API. Needs the `[web]` extra (Starlette, uvicorn).

```python
from syslogkit.web import WebServer

with WebServer("syslog.db", "127.0.0.1", 8514) as web:     # serves from a thread
    print(web.url)
```

`syslogkit web --db syslog.db` runs it from the command line. Modules: `source` (every read of
the store), `params` (URL parameters -> filters), `render` (records -> JSON), `security`
(listening rule, token, session cookie, headers), `app` (the Starlette application inside its
guard), `server` (uvicorn with our accept loop: connection limits, deadlines, TLS).
This package's `__init__` imports nothing that needs the extra; import `WebServer` or
`create_app` from here and the extra is loaded then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["WebServer", "create_app", "missing_extra"]

if TYPE_CHECKING:
    from .app import create_app
    from .server import WebServer


def missing_extra() -> str | None:
    """None when the `[web]` extra is installed, else the one line that says how to get it."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        return (
            f"the web UI needs the [web] extra: pip install 'syslogkit[web]' ({exc.name} missing)"
        )
    return None


def __getattr__(name: str) -> Any:
    if name == "WebServer":
        from .server import WebServer

        return WebServer
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
