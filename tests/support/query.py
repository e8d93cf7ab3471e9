"""Records for the query language's tests: `record(i, msg, ...)`, one a minute from `T0`, with
the fields a query selects on (host, app, severity, facility by parity, procid 4700+i, msgid
ID<i>, structured data, peer, transport)."""

from __future__ import annotations

from datetime import datetime, timezone

from syslogkit import Facility, SDElement, Severity, SyslogMessage
from syslogkit.collector import Record

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc).timestamp()


def record(
    i: int,
    msg: str,
    *,
    host: str | None = "web1",
    app: str = "shop",
    severity: Severity = Severity.INFO,
    sd: tuple[SDElement, ...] = (),
    peer: str = "10.1.2.3:40000",
    transport: str = "tcp",
) -> Record:
    when = T0 + i * 60
    message = SyslogMessage(
        facility=Facility.AUTH if i % 2 else Facility.LOCAL0,
        severity=severity,
        version=1,
        timestamp=datetime.fromtimestamp(when, timezone.utc),
        hostname=host,
        app_name=app,
        procid=str(4700 + i),
        msgid=f"ID{i}",
        structured_data=sd,
        msg=msg,
    )
    return Record(
        raw=f"<13>1 - - - - - - {msg}".encode(),
        received_at=when,
        transport=transport,
        peer=peer,
        listener="tcp://127.0.0.1:5514",
        message=message,
    )
