"""RsyslogPeer: a real rsyslogd on loopback high ports that writes what it parsed as JSON lines.

    with RsyslogPeer(tmp_path, udp=True, tcp=True) as peer:
        sock.sendto(b"<13>1 - - - - - - hi", (peer.host, peer.udp_port))
        [record] = peer.messages(1)
        assert record["msg"] == "hi"

Every input listens on its own free port of `host` (127.0.0.1 unless asked), chosen once and kept
across `restart()`. All inputs feed one ruleset whose only action writes one JSON object per
message to `output_path`; rsyslogd's own messages (errors included) reach the default ruleset and
go to `internal_path`. The system's /dev/log, imklog and imjournal are never touched.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import dataclasses
import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from . import ports
from .records import PeerError, read_json_lines, wait_for_records

ParamValue = str | int | Sequence[str]

# Fields of every JSON record, as rsyslog names its properties. The numeric ones are numbers.
FIELDS = (
    "pri",
    "syslogfacility",
    "syslogseverity",
    "protocol-version",
    "timereported",
    "hostname",
    "app-name",
    "procid",
    "msgid",
    "structured-data",
    "msg",
    "rawmsg",
    "inputname",
    "fromhost-ip",
)
_NUMERIC = {"pri", "syslogfacility", "syslogseverity", "protocol-version"}

# Debian packages that ship the modules not in the `rsyslog` package itself.
MODULE_PACKAGES = {
    "imrelp": "rsyslog-relp",
    "omrelp": "rsyslog-relp",
    "lmnsd_gtls": "rsyslog-gnutls",
    "lmnsd_ossl": "rsyslog-openssl",
}
TLS_AUTH_MODES = ("anon", "x509/certvalid", "x509/name", "x509/fingerprint")


class _PortTaken(PeerError):
    pass


# ---------------------------------------------------------------------------------------------
# What is installed


def rsyslogd_path() -> str | None:
    """Path of rsyslogd, or None when it is not installed."""
    found = shutil.which("rsyslogd")
    if found:
        return found
    for candidate in ("/usr/sbin/rsyslogd", "/sbin/rsyslogd"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def module_dir() -> Path | None:
    """The folder with rsyslog's loadable modules (imudp.so, ...), or None."""
    patterns = ("/usr/lib/*/rsyslog", "/usr/lib/rsyslog", "/usr/lib64/rsyslog")
    for pattern in patterns:
        for d in sorted(glob.glob(pattern)):
            if os.path.exists(os.path.join(d, "imudp.so")):
                return Path(d)
    return None


def missing(modules: Iterable[str] = ()) -> str | None:
    """Why rsyslogd with `modules` (names like "imrelp", "lmnsd_gtls") cannot run, or None."""
    if rsyslogd_path() is None:
        return "rsyslogd is not installed (apt-get install rsyslog)"
    directory = module_dir()
    if directory is None:
        return "rsyslog's module folder (with imudp.so) was not found"
    absent = [m for m in dict.fromkeys(modules) if not (directory / f"{m}.so").exists()]
    if absent:
        packages = sorted({MODULE_PACKAGES.get(m, "rsyslog") for m in absent})
        names = ", ".join(f"{m}.so" for m in absent)
        return f"rsyslog module {names} not in {directory} (apt-get install {' '.join(packages)})"
    return None


# ---------------------------------------------------------------------------------------------
# Inputs a peer can have


@dataclass(frozen=True)
class UDP:
    """imudp. `params`: more input() parameters, e.g. {"rcvbufSize": "4m"}."""

    params: Mapping[str, ParamValue] = field(default_factory=dict)


@dataclass(frozen=True)
class TCP:
    """Plain imtcp: octet-counted and LF-delimited frames both accepted."""

    params: Mapping[str, ParamValue] = field(default_factory=dict)


@dataclass(frozen=True)
class TLS:
    """imtcp with a TLS stream driver, set on the input (works in rsyslog 8.2302).

    `auth_mode`: "x509/certvalid" (the default: a client certificate chained to `ca_file` is
    required), "x509/name" or "x509/fingerprint" (with `permitted_peers`: names, or fingerprints
    like "SHA256:AB:..."), or "anon" (no client certificate asked). `driver`: "gtls" or "ossl".
    Beware: 8.2302's ossl driver does not reliably enforce x509/name and x509/fingerprint (it
    skips the check when the handshake needs a retry: rsyslog issue #6350); gtls does.
    Files left None are filled by the `rsyslog` fixture from the session's `pki` (main CA and
    server certificate).
    """

    auth_mode: str = "x509/certvalid"
    permitted_peers: Sequence[str] = ()
    driver: str = "gtls"
    ca_file: Path | str | None = None
    cert_file: Path | str | None = None
    key_file: Path | str | None = None
    params: Mapping[str, ParamValue] = field(default_factory=dict)

    def with_defaults(self, ca_file: Path, cert_file: Path, key_file: Path) -> TLS:
        """A copy whose unset files are the given ones."""
        return dataclasses.replace(
            self,
            ca_file=self.ca_file or ca_file,
            cert_file=self.cert_file or cert_file,
            key_file=self.key_file or key_file,
        )


@dataclass(frozen=True)
class RELP:
    """imrelp (plain). For a no-loss test start the peer with `no_loss=True`."""

    params: Mapping[str, ParamValue] = field(default_factory=dict)


@dataclass(frozen=True)
class UxSock:
    """imuxsock on a test socket (never /dev/log); `peer.uxsock_path` says where.

    `use_special_parser` (rsyslog's default, on) expects the local format without HOSTNAME;
    `parse_hostname` makes imuxsock take a HOSTNAME from the message (only with the special
    parser off). Rate limiting is off.
    """

    use_special_parser: bool = True
    parse_hostname: bool = False
    params: Mapping[str, ParamValue] = field(default_factory=dict)


def _q(value: str | int | os.PathLike[str]) -> str:
    text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _params(params: Mapping[str, ParamValue]) -> str:
    out = [""]
    for key, value in params.items():
        if isinstance(value, (str, int)):
            out.append(f"{key}={_q(value)}")
        else:
            out.append(f"{key}=[{', '.join(_q(v) for v in value)}]")
    return " ".join(out)  # with a leading space when not empty


def _onoff(flag: bool) -> str:
    return "on" if flag else "off"


# ---------------------------------------------------------------------------------------------
# Sockets of a process, from /proc


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(int(link[8:-1]))
    return inodes


def _inet_sockets(proto: str, port: int) -> list[tuple[str, int]]:
    """(state, inode) of the `proto` ("tcp"/"udp") sockets bound to local `port`, v4 and v6."""
    found = []
    for name in (proto, proto + "6"):
        with contextlib.suppress(OSError), open(f"/proc/net/{name}", encoding="ascii") as f:
            next(f, None)
            for line in f:
                fields = line.split()
                if len(fields) > 9 and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    found.append((fields[3], int(fields[9])))
    return found


def _unix_socket_inodes(path: str) -> set[int]:
    inodes = set()
    with contextlib.suppress(OSError), open("/proc/net/unix", encoding="utf-8") as f:
        next(f, None)
        for line in f:
            fields = line.split()
            if len(fields) >= 8 and fields[7] == path:
                inodes.add(int(fields[6]))
    return inodes


_TCP_LISTEN = "0A"
# What rsyslogd prints when an input cannot listen (bad TLS files, address in use, ...).
_LISTENER_FAILED = re.compile(r"(?i)could not (create|activate)[^\n]*listener")


RsyslogFactory = Callable[..., "RsyslogPeer"]  # the `rsyslog` fixture: kwargs -> started peer

# ---------------------------------------------------------------------------------------------
# Dying with the test run


_live: set[RsyslogPeer] = set()  # running peers, stopped at exit if a test left one behind


@atexit.register
def _stop_all() -> None:
    for peer in list(_live):
        with contextlib.suppress(Exception):
            peer.stop(timeout=2.0)


try:
    _libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - not Linux/glibc
    _libc = None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: rsyslogd gets SIGKILL if the test run dies.
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


# ---------------------------------------------------------------------------------------------
# The peer


class RsyslogPeer:
    """A real rsyslogd started with a config of its own in `directory`.

    Ask for inputs with `udp`, `tcp`, `relp`, `uxsock` (True or a spec object) and `tls`
    (a `TLS` with its files set). `no_loss` gives the collecting ruleset `queue.type="Direct"`
    (imrelp then acknowledges a message only once it is written). `extra_config` is appended
    to the config as is.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        udp: UDP | bool = False,
        tcp: TCP | bool = False,
        tls: TLS | None = None,
        relp: RELP | bool = False,
        uxsock: UxSock | bool = False,
        host: str = "127.0.0.1",
        max_message_size: int = 8192,
        no_loss: bool = False,
        extra_config: str = "",
        ready_timeout: float = 10.0,
    ) -> None:
        if host not in ("127.0.0.1", "::1"):
            raise ValueError("test peers listen on loopback only: host is 127.0.0.1 or ::1")
        self.directory = Path(directory).resolve()
        self.host = host
        self.udp = UDP() if udp is True else (udp or None)
        self.tcp = TCP() if tcp is True else (tcp or None)
        self.tls = tls
        self.relp = RELP() if relp is True else (relp or None)
        self.uxsock = UxSock() if uxsock is True else (uxsock or None)
        if not (self.udp or self.tcp or self.tls or self.relp or self.uxsock):
            raise ValueError("ask for at least one input: udp, tcp, tls, relp or uxsock")
        if self.tls is not None:
            if self.tls.auth_mode not in TLS_AUTH_MODES:
                raise ValueError(f"TLS auth_mode must be one of {TLS_AUTH_MODES}")
            if self.tls.driver not in ("gtls", "ossl"):
                raise ValueError('TLS driver must be "gtls" or "ossl"')
            if None in (self.tls.ca_file, self.tls.cert_file, self.tls.key_file):
                raise ValueError("TLS needs ca_file, cert_file and key_file")
        self.max_message_size = max_message_size
        self.no_loss = no_loss
        self.extra_config = extra_config
        self.ready_timeout = ready_timeout

        self.directory.mkdir(parents=True, exist_ok=True)
        self.work_dir = self.directory / "work"
        self.config_path = self.directory / "rsyslog.conf"
        self.pid_path = self.directory / "rsyslogd.pid"
        self.output_path = self.directory / "messages.jsonl"
        self.internal_path = self.directory / "internal.log"
        self.stderr_path = self.directory / "stderr.log"
        self._uxsock_path = self._pick_uxsock_path()
        self._ports: dict[str, int] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr_file: Any = None
        self._started_once = False
        self._stderr_offset = 0

    # -- what it needs and where it listens ---------------------------------------------------

    @property
    def modules(self) -> list[str]:
        """The rsyslog modules (.so names) this peer's config loads."""
        mods = []
        if self.udp:
            mods.append("imudp")
        if self.tcp or self.tls:
            mods.append("imtcp")
        if self.tls:
            mods.append(f"lmnsd_{self.tls.driver}")
        if self.relp:
            mods.append("imrelp")
        if self.uxsock:
            mods.append("imuxsock")
        return mods

    def _port(self, kind: str) -> int:
        if kind not in self._ports:
            raise PeerError(f"this peer has no {kind} input (or was never started)")
        return self._ports[kind]

    @property
    def udp_port(self) -> int:
        return self._port("udp")

    @property
    def tcp_port(self) -> int:
        return self._port("tcp")

    @property
    def tls_port(self) -> int:
        return self._port("tls")

    @property
    def relp_port(self) -> int:
        return self._port("relp")

    @property
    def uxsock_path(self) -> str:
        if self.uxsock is None:
            raise PeerError("this peer has no uxsock input")
        return self._uxsock_path

    def address(self, kind: str) -> tuple[str, int]:
        """(host, port) of the "udp", "tcp", "tls" or "relp" input."""
        return (self.host, self._port(kind))

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _pick_uxsock_path(self) -> str:
        path = str(self.directory / "log.sock")
        if len(path.encode()) <= 100:  # sun_path holds 108 bytes
            return path
        short = tempfile.mkdtemp(prefix="rsk-")
        weakref.finalize(self, shutil.rmtree, short, True)
        return os.path.join(short, "log.sock")

    def _pick_ports(self) -> None:
        kinds = [k for k in ("udp", "tcp", "tls", "relp") if getattr(self, k) is not None]
        self._ports = {kind: ports.free_port(self.host) for kind in kinds}

    # -- config -------------------------------------------------------------------------------

    def config(self) -> str:
        """The rsyslog config text for the current ports."""
        lines = [
            "# written by tests/peers/rsyslog.py",
            f'global(workDirectory={_q(self.work_dir)} processInternalMessages="on"'
            f' maxMessageSize="{self.max_message_size}")',
            # Not net.enableDNS="off": with it, 8.2302's ossl driver skips the x509/name and
            # x509/fingerprint checks and admits any client whose chain is valid.
        ]
        for mod in dict.fromkeys(m for m in self.modules if m.startswith("im")):
            extra = ' SysSock.Use="off"' if mod == "imuxsock" else ""
            lines.append(f'module(load="{mod}"{extra})')
        lines.append('template(name="peer_json" type="list" option.jsonf="on") {')
        for name in FIELDS:
            more = ' dateFormat="rfc3339"' if name == "timereported" else ""
            more += ' datatype="number"' if name in _NUMERIC else ""
            lines.append(f'  property(outname="{name}" name="{name}" format="jsonf"{more})')
        lines.append("}")
        queue = ' queue.type="Direct"' if self.no_loss else ""
        lines += [
            f'ruleset(name="peer_collect"{queue}) {{',
            f'  action(type="omfile" file={_q(self.output_path)} template="peer_json"'
            ' flushOnTXEnd="on" asyncWriting="off")',
            "}",
        ]
        common = f'address={_q(self.host)} ruleset="peer_collect"'
        if self.udp:
            lines.append(
                f'input(type="imudp" port="{self.udp_port}" {common}{_params(self.udp.params)})'
            )
        if self.tcp:
            lines.append(
                f'input(type="imtcp" port="{self.tcp_port}" {common}{_params(self.tcp.params)})'
            )
        if self.tls:
            tls = self.tls
            peers = {"permittedPeer": list(tls.permitted_peers)} if tls.permitted_peers else {}
            assert tls.ca_file and tls.cert_file and tls.key_file
            lines.append(
                f'input(type="imtcp" port="{self.tls_port}" {common}'
                f' streamDriver.name="{tls.driver}" streamDriver.mode="1"'
                f" streamDriver.authMode={_q(tls.auth_mode)}"
                f" streamDriver.CAFile={_q(tls.ca_file)}"
                f" streamDriver.CertFile={_q(tls.cert_file)}"
                f" streamDriver.KeyFile={_q(tls.key_file)}"
                f"{_params(peers)}{_params(tls.params)})"
            )
        if self.relp:
            lines.append(
                f'input(type="imrelp" port="{self.relp_port}" {common}{_params(self.relp.params)})'
            )
        if self.uxsock:
            ux = self.uxsock
            lines.append(
                f'input(type="imuxsock" socket={_q(self._uxsock_path)} ruleset="peer_collect"'
                f' useSpecialParser="{_onoff(ux.use_special_parser)}"'
                f' parseHostname="{_onoff(ux.parse_hostname)}" ratelimit.interval="0"'
                f"{_params(ux.params)})"
            )
        lines += [
            "# Only rsyslogd's own messages reach the default ruleset.",
            f'*.* action(type="omfile" file={_q(self.internal_path)}'
            ' template="RSYSLOG_FileFormat")',
            self.extra_config,
            "",
        ]
        return "\n".join(lines)

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> RsyslogPeer:
        """Start rsyslogd and wait until every input is bound; new ports on a port clash."""
        if self.running:
            raise PeerError("rsyslogd is already running")
        first = not self._started_once
        for attempt in range(3 if first else 1):
            if first:
                self._pick_ports()
            try:
                self._spawn()
                self._wait_ready()
            except _PortTaken:
                self._halt(timeout=3.0)
                if attempt == 2:
                    raise
                continue
            except PeerError:
                self._halt(timeout=3.0)
                raise
            self._started_once = True
            return self
        raise AssertionError("unreachable")  # pragma: no cover

    def _spawn(self) -> None:
        exe = rsyslogd_path()
        if exe is None:
            raise PeerError(missing() or "rsyslogd is not installed")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config(), encoding="utf-8")
        # rsyslogd starts even when its config has errors (it skips what it cannot parse), so
        # validate first: `rsyslogd -N1` takes a few ms and exits non-zero on any error.
        code, output = self._validate()
        if code != 0:
            raise PeerError(
                f"rsyslogd -N1 rejects the config (exit code {code}):\n{output.rstrip()}\n"
                f"--- config ---\n{self.config_path.read_text(encoding='utf-8').rstrip()}"
            )
        # rsyslogd refuses to start while its pid file exists; one is left after SIGKILL.
        self.pid_path.unlink(missing_ok=True)
        self._stderr_file = open(self.stderr_path, "ab")  # noqa: SIM115 - closed in _halt
        self._stderr_offset = self._stderr_file.tell()
        in_main = threading.current_thread() is threading.main_thread()
        self._proc = subprocess.Popen(
            [exe, "-n", "-f", str(self.config_path), "-i", str(self.pid_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._stderr_file,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
            preexec_fn=_die_with_parent if in_main else None,
        )
        _live.add(self)

    def _expected(self) -> list[tuple[str, int | str]]:
        want: list[tuple[str, int | str]] = []
        for kind, port in self._ports.items():
            want.append(("udp" if kind == "udp" else "tcp", port))
        if self.uxsock:
            want.append(("unix", self._uxsock_path))
        return want

    @staticmethod
    def _listeners(proto: str, where: int | str) -> set[int]:
        """Inodes of the sockets listening (TCP) or bound (UDP, unix) at `where`."""
        if proto == "unix":
            return _unix_socket_inodes(str(where))
        assert isinstance(where, int)
        return {
            inode
            for state, inode in _inet_sockets(proto, where)
            if inode and (proto == "udp" or state == _TCP_LISTEN)
        }

    def _stderr_since_spawn(self) -> str:
        with open(self.stderr_path, "rb") as f:
            f.seek(self._stderr_offset)
            return f.read().decode("utf-8", "replace")

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.ready_timeout
        pending = self._expected()
        while True:
            code = self._proc.poll()
            if code is not None:
                raise PeerError(
                    f"rsyslogd exited with code {code} while starting\n"
                    + self.diagnostics(check_config=True)
                )
            # The sockets first, then rsyslogd's fds: a socket it opens in between is then
            # only seen on the next round, never mistaken for another process's.
            found = {(proto, where): self._listeners(proto, where) for proto, where in pending}
            mine = _socket_inodes(self._proc.pid)
            still = []
            for (proto, where), inodes in found.items():
                if inodes & mine:
                    continue
                if inodes and proto != "unix":
                    raise _PortTaken(f"{proto} port {where} is bound by another process")
                still.append((proto, where))
            pending = still
            if not pending and self.pid_path.exists():
                return
            if _LISTENER_FAILED.search(self._stderr_since_spawn()):  # no use waiting longer
                raise PeerError(
                    f"rsyslogd could not open a listener; not bound: {pending}\n"
                    + self.diagnostics(check_config=True)
                )
            if time.monotonic() > deadline:
                raise PeerError(
                    f"rsyslogd not ready after {self.ready_timeout:.0f} s; not bound: {pending}\n"
                    + self.diagnostics(check_config=True)
                )
            time.sleep(0.02)

    def _halt(self, timeout: float) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)  # in case a test stopped it with SIGSTOP
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5.0)
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None
        _live.discard(self)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop rsyslogd (SIGTERM, then SIGKILL after `timeout`); safe to call twice."""
        self._halt(timeout)

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 5.0) -> None:
        """Send `sig` to rsyslogd; for SIGKILL/SIGTERM/SIGINT wait (bounded) until it is gone."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise PeerError("rsyslogd is not running")
        proc.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired as exc:
                raise PeerError(f"rsyslogd still running {timeout} s after signal {sig}") from exc
            self._halt(timeout)

    def restart(self) -> RsyslogPeer:
        """Stop it if running (gracefully) and start it again on the same ports and socket."""
        if not self._started_once:
            raise PeerError("restart() before start()")
        self._halt(5.0)
        return self.start()

    def __enter__(self) -> RsyslogPeer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what it received ---------------------------------------------------------------------

    def records(self) -> list[dict[str, Any]]:
        """The JSON records written so far (complete lines only), in file order.

        A line that does not parse (torn by a SIGKILL) is kept as {"_unparsed": line}.
        """
        return read_json_lines(self.output_path)

    def messages(self, n: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait (at most `timeout` s) until at least `n` records are written; return them all."""
        return wait_for_records(self.records, n, timeout, self.diagnostics)

    def internal_log(self) -> str:
        """rsyslogd's own messages (start, errors, TLS refusals)."""
        try:
            return self.internal_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_internal(self, text: str, timeout: float = 10.0) -> str:
        """Wait (at most `timeout` s) until `text` is in the internal log; return the log."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.internal_log()
            if text in log:
                return log
            if time.monotonic() > deadline:
                raise PeerError(
                    f"{text!r} not in rsyslogd's internal log after {timeout} s\n"
                    + self.diagnostics()
                )
            time.sleep(0.02)

    def stderr(self) -> str:
        """What rsyslogd printed on stdout/stderr, over all its runs."""
        try:
            return self.stderr_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def _validate(self) -> tuple[int | None, str]:
        exe = rsyslogd_path()
        if exe is None:
            return None, "rsyslogd is not installed"
        try:
            done = subprocess.run(
                [exe, "-N1", "-f", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=10.0,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None, "rsyslogd -N1 timed out"
        return done.returncode, (done.stdout + done.stderr).decode("utf-8", "replace")

    def check_config(self) -> str:
        """Exit code and output of `rsyslogd -N1` (config validation) on the config file."""
        code, output = self._validate()
        return f"exit code {code}\n{output}"

    def diagnostics(self, check_config: bool = False) -> str:
        """Config, ports, stderr and internal log: what to show when a test fails."""
        state = "running" if self.running else "not running"
        code = None if self._proc is None else self._proc.poll()
        parts = [
            f"rsyslogd pid {self.pid} ({state}, exit code {code}); ports {self._ports};"
            f" files in {self.directory}",
            "--- stderr ---",
            self.stderr().rstrip(),
            "--- internal log ---",
            self.internal_log().rstrip(),
        ]
        if check_config:
            parts += ["--- rsyslogd -N1 ---", self.check_config().rstrip()]
            parts += ["--- config ---", self.config_path.read_text(encoding="utf-8").rstrip()]
        return "\n".join(parts)
