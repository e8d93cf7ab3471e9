"""`syslogkit collect --config FILE`: SIGHUP reloads the file without losing a record.

Decisions (syslog-ng's reload is the model: sockets kept, a bad file leaves the old config):

- The new file is read and checked as `--check` does, with the flags of the command line over
  it again. On any fault nothing changes, and one line says why with file:line.
- Otherwise, in this order: listeners that are new are bound (a failure to bind changes
  nothing); the pipeline takes the new sinks and routes at one point of its queue (records
  submitted before it go where the old routes said, those after where the new ones say); sinks
  whose kind and options are unchanged are the same objects (a store keeps its writer
  process); sinks removed are drained, then closed; the new listeners start; listeners whose
  scheme, host and port are gone stop after reading what their clients sent; the TLS
  certificate, key and CA files are read again on every reload (new handshakes use them, open
  sessions go on). A kept listener keeps its socket and its connections, and takes the new
  zone and limits (its UDP receive buffer stays as it was until the next start).
- Settings that only a start can change (user, web, metrics, stats file, uvloop, NATS) are
  left as they are.
- SIGHUP is logrotate's signal too: the sinks that write files open them again (`Reopens`),
  whether the reload is applied or refused, and without `--config` that is all it does.
- Counted for `/metrics`: reloads done, failed, the time of the last success and of the last
  failure, and the last failure's line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from syslogkit.cli.main import CliError
from syslogkit.cli.settings import SinkSpec, apply_flags, read_settings
from syslogkit.collector.systemd import bind_early, notify

__all__ = ["Reloader", "Running", "reopen_files"]


@dataclass
class Running:
    """What the collector runs with now (a reload replaces it)."""

    collector: Any
    specs: list[SinkSpec]
    sinks: list[Any]
    router: Any
    names: dict[str, str] = field(default_factory=dict)  # listener URL as configured -> name


def _key(spec: SinkSpec, args: argparse.Namespace) -> tuple[Any, ...]:
    """What makes a sink the same sink across a reload."""
    extra: tuple[Any, ...] = ()
    if spec.kind == "store":
        extra = (args.retention_age, args.retention_size, args.sync, args.no_writer_process)
    return (spec.name, spec.kind, repr(sorted(spec.options.items())), extra)


class Reloader:
    """SIGHUP's work (see the module docstring); `reload()` runs one at a time."""

    def __init__(
        self,
        parser: argparse.ArgumentParser,
        given: dict[str, Any],
        path: str,
        running: Running,
        args: argparse.Namespace,
        build_sink: Callable[[SinkSpec, argparse.Namespace], Any],
        tls_config: Callable[[argparse.Namespace, list[Any]], Any],
        err: IO[str] = sys.stderr,
    ) -> None:
        self.parser = parser
        self.given = given
        self.path = path
        self.running = running
        self.args = args
        self.build_sink = build_sink
        self.tls_config = tls_config
        self.err = err
        self.count = 0
        self.failures = 0
        self.last_success: float | None = None
        self.last_failure: float | None = None
        self.last_error: str | None = None
        self._lock = asyncio.Lock()

    def stats(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "failures": self.failures,
            "last_success": self.last_success,
            "last_failure": self.last_failure,
            "last_error": self.last_error,
        }

    async def reload(self) -> bool:
        """Read the file again and apply it; True when applied."""
        async with self._lock:
            notify(f"RELOADING=1\nSTATUS=reloading {self.path}")
            try:
                line = await self._reload()
            except _Refused as exc:
                line = self._failed(f"reload: {exc}; still running the previous config")
                ok = False
                await reopen_files(self.running.collector)
            except Exception as exc:  # a bug: said, counted, never fatal
                line = self._failed(f"reload failed: {type(exc).__name__}: {exc}")
                ok = False
            else:
                self.count += 1
                self.last_success = time.time()
                ok = True
            urls = ", ".join(self.running.collector.urls)
            notify(f"READY=1\nSTATUS=listening on {urls}")
            print(f"syslogkit collect: {line}", file=self.err, flush=True)
            return ok

    def _failed(self, line: str) -> str:
        self.failures += 1
        self.last_failure = time.time()
        self.last_error = line
        return line

    async def _reload(self) -> str:
        from syslogkit.cli.collect import limits_of, listener_tls
        from syslogkit.collector import parse_listen_url, zone_of
        from syslogkit.collector.routes import compile_routes

        loop = asyncio.get_running_loop()
        settings, errors = await loop.run_in_executor(None, read_settings, self.path)
        if errors:
            errors.sort(key=lambda e: e.line)
            more = f" (and {len(errors) - 1} more: --check shows all)" if len(errors) > 1 else ""
            raise _Refused(f"{errors[0]}{more}")
        args = apply_flags(self.parser, settings, self.given)
        from syslogkit.cli.nats import split_nats_listen

        listen, _ = split_nats_listen(args.listen or [])
        try:
            addresses = [parse_listen_url(url) for url in listen]
            tls = self.tls_config(args, addresses)
            context = tls.context() if tls is not None else None
            own = {a: config.context() for a, config in listener_tls(args, addresses).items()}
            limits = limits_of(args)
            zone = zone_of(args.timezone)
        except (ValueError, OSError, ssl.SSLError, CliError) as exc:
            raise _Refused(f"{self.path}: {exc}") from None
        running = self.running
        collector = running.collector
        by_place = _match(collector.listeners, addresses)
        wanted = {_place(a): a for a in addresses}
        # sinks: the unchanged ones kept, the others built
        old = {
            _key(spec, self.args): sink
            for spec, sink in zip(running.specs, running.sinks, strict=True)
        }
        sinks: list[Any] = []
        built: list[Any] = []
        try:
            for spec in args.sink_specs:
                sink = old.get(_key(spec, args))
                if sink is None:
                    sink = await loop.run_in_executor(None, self.build_sink, spec, args)
                    built.append(sink)
                sinks.append(sink)
            names = dict(zip(listen, args.listener_names, strict=False))
            router = compile_routes(
                args.routes, [s.name for s in args.sink_specs], list(names.values())
            )
            fresh = {
                place: bind_early(a, collector.limits)
                for place, a in wanted.items()
                if place not in by_place
            }
        except (OSError, ValueError, CliError) as exc:
            for sink in built:
                with contextlib.suppress(Exception):
                    sink.close()
            raise _Refused(f"{self.path}: {getattr(exc, 'strerror', None) or exc}") from None
        # from here on nothing is refused
        await loop.run_in_executor(None, collector.pipeline.reconfigure, sinks, router)
        await reopen_files(collector)
        if running.router is not None:  # its rate limits' last drops, said before it goes
            running.router.tell_untold()
        kept = {wanted[place]: x for place, x in by_place.items() if place in wanted}
        collector.set_tls(context, own, kept)
        collector.limits, collector.zone = limits, zone  # for the listeners opened from now on
        for place, listener in by_place.items():
            if place in wanted:
                _retune(listener, wanted[place], limits, zone)
        for place, sock in fresh.items():
            await collector.add_listener(wanted[place], sock)
        removed = [x for place, x in by_place.items() if place not in wanted]
        for listener in removed:
            await collector.remove_listener(listener)
        if router is not None:
            url_name = {_place(parse_listen_url(u)): n for u, n in names.items()}
            for place, listener in _match(collector.listeners, addresses).items():
                name = url_name.get(place)
                if name is not None:
                    router.listener_names[listener.url] = name
        self.running = Running(collector, list(args.sink_specs), sinks, router, names)
        self.args = args
        same = len(sinks) - len(built)
        return (
            f"reloaded {self.path}: {len(addresses)} listeners ({len(fresh)} new, "
            f"{len(removed)} removed), {len(sinks)} sinks ({same} kept), "
            f"{len(args.routes)} routes" + (", TLS files read again" if context or own else "")
        )


async def reopen_files(collector: Any) -> None:
    """SIGHUP is logrotate's signal too: the file sinks open their files again, between two
    batches, whatever becomes of the reload."""
    await asyncio.get_running_loop().run_in_executor(None, collector.pipeline.reopen)


def _retune(listener: Any, address: Any, limits: Any, zone: Any) -> None:
    """A kept listener takes the new limits (new connections, the per-frame deadlines, the
    frame size) and zone; its socket and connections stay."""
    from syslogkit.collector import zone_of

    listener.limits = address.limits(limits)
    listener.decoder.max_frame = limits.max_frame
    listener.decoder.zone = zone if address.zone is None else zone_of(address.zone)


def _place(address: Any) -> tuple[str, str, int]:
    return (address.scheme, address.host, address.port)


def _match(listeners: list[Any], addresses: list[Any]) -> dict[tuple[str, str, int], Any]:
    """The running listeners by the place of the configured address each one is: its own
    place, or with port 0 (any port) the place of the new config's port-0 address."""
    exact = {_place(a) for a in addresses}
    out: dict[tuple[str, str, int], Any] = {}
    for listener in listeners:
        place = _place(listener.address)
        if place not in exact:
            for address in addresses:
                candidate = _place(address)
                if address.port == 0 and candidate not in out and candidate[:2] == place[:2]:
                    place = candidate
                    break
        out[place] = listener
    return out


class _Refused(Exception):
    """The new config is not applied: why, in one line."""
