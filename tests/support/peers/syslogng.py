"""A real syslog-ng for interop tests, run from its unpacked Debian package.

The syslog-ng and rsyslog packages conflict (INTEROP.md), so `.ci/run` unpacks
`syslog-ng-core` into /opt/syslog-ng (`SYSLOG_NG_ROOT` names another place) and installs the
libraries it needs; an installed /usr/sbin/syslog-ng is used when there is no unpacked one.

`SyslogNgPeer(directory, udp=True, tcp=True, tls=SyslogNgTLS(...))` writes a config with
RFC 5424 sources on loopback high ports (UDP through `syslog-parser(flags(syslog-protocol))`,
TCP and TLS through `syslog()`, which takes octet-counted frames) and one JSON-lines output of
syslog-ng's own parse: `$(format-json --scope rfc5424 --scope sdata ...)`, so a record reads
`{"PROGRAM": ..., "PID": ..., "MSGID": ..., "_SDATA": {"id@32473": {"k": "v"}}, ...}`.
`extra_config` is appended as is; the sources are named `s_udp`, `s_tcp` and `s_tls`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .ports import free_ports
from .records import PeerError, read_json_lines, wait_for_records
from .rsyslog import _TCP_LISTEN, _die_with_parent, _inet_sockets, _socket_inodes

UNPACKED = "/opt/syslog-ng"
_SBIN = Path("usr/sbin/syslog-ng")


def syslog_ng_root() -> Path | None:
    """Where syslog-ng is: its unpacked package (SYSLOG_NG_ROOT, /opt/syslog-ng), or "/"."""
    unpacked = Path(os.environ.get("SYSLOG_NG_ROOT", UNPACKED))
    for root in (unpacked, Path("/")):
        if (root / _SBIN).is_file():
            return root
    return None


def missing_syslog_ng() -> str | None:
    """Why syslog-ng cannot run here, or None."""
    if syslog_ng_root() is None:
        return (
            f"syslog-ng is not unpacked in {os.environ.get('SYSLOG_NG_ROOT', UNPACKED)}"
            " (.ci/run does it: apt-get download syslog-ng-core; dpkg-deb -x)"
        )
    return None


@dataclass(frozen=True)
class SyslogNgTLS:
    """A TLS source: syslog-ng's server certificate, and the CA client certificates must chain
    to (`peer_verify`: syslog-ng's `peer-verify()`, "required-trusted" by default)."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    peer_verify: str = "required-trusted"


class SyslogNgPeer:
    """A syslog-ng started in the foreground with a config of its own in `directory`."""

    def __init__(
        self,
        directory: Path,
        *,
        udp: bool = False,
        tcp: bool = False,
        tls: SyslogNgTLS | None = None,
        extra_config: str = "",
        ready_timeout: float = 10.0,
    ) -> None:
        self.directory = directory
        self.tls = tls
        self.extra_config = extra_config
        self.ready_timeout = ready_timeout
        kinds = [kind for kind, wanted in (("udp", udp), ("tcp", tcp), ("tls", tls)) if wanted]
        self.ports = dict(zip(kinds, free_ports(len(kinds)), strict=True))
        self.config_path = directory / "syslog-ng.conf"
        self.output_path = directory / "received.jsonl"
        self.internal_path = directory / "internal.log"
        self.stderr_path = directory / "stderr.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def udp_port(self) -> int:
        return self.ports["udp"]

    @property
    def tcp_port(self) -> int:
        return self.ports["tcp"]

    @property
    def tls_port(self) -> int:
        return self.ports["tls"]

    def config(self) -> str:
        """The config file's text."""
        out = [
            "@version: 3.38",
            "options { frac-digits(6); keep-hostname(yes); use-dns(no); dns-cache(no);"
            " stats-freq(0); log-msg-size(65536); };",
            "parser p_5424 { syslog-parser(flags(syslog-protocol)); };",
            f'destination d_out {{ file("{self.output_path}" template("$(format-json'
            " --scope rfc5424 --scope sdata --key S_ISODATE --key FACILITY_NUM"
            ' --key SEVERITY_NUM)\\n")); };',
            "source s_internal { internal(); };",
            f'destination d_internal {{ file("{self.internal_path}"); }};',
            "log { source(s_internal); destination(d_internal); };",
        ]
        if "udp" in self.ports:
            out.append(
                f'source s_udp {{ network(ip("127.0.0.1") port({self.udp_port})'
                ' transport("udp") flags(no-parse)); };'
            )
            out.append("log { source(s_udp); parser(p_5424); destination(d_out); };")
        if "tcp" in self.ports:
            out.append(
                f'source s_tcp {{ syslog(ip("127.0.0.1") port({self.tcp_port})'
                ' transport("tcp")); };'
            )
            out.append("log { source(s_tcp); destination(d_out); };")
        if self.tls is not None:
            t = self.tls
            out.append(
                f'source s_tls {{ syslog(ip("127.0.0.1") port({self.tls_port}) transport("tls")'
                f' tls(key-file("{t.key_file}") cert-file("{t.cert_file}")'
                f' ca-file("{t.ca_file}") peer-verify({t.peer_verify}))); }};'
            )
            out.append("log { source(s_tls); destination(d_out); };")
        if self.extra_config:
            out.append(self.extra_config)
        return "\n".join(out) + "\n"

    def _command(self, *extra: str) -> tuple[list[str], dict[str, str]]:
        root = syslog_ng_root()
        if root is None:
            raise PeerError(missing_syslog_ng() or "no syslog-ng")
        command = [str(root / _SBIN), "-f", str(self.config_path), *extra]
        env = dict(os.environ)
        if root != Path("/"):
            libs = root / "usr/lib/syslog-ng"
            modules = sorted(p for p in libs.glob("3.*") if p.is_dir())
            env["LD_LIBRARY_PATH"] = os.pathsep.join(
                [str(libs), *filter(None, [env.get("LD_LIBRARY_PATH")])]
            )
            if modules:
                command.append(f"--module-path={modules[-1]}")
        return command, env

    def start(self) -> SyslogNgPeer:
        """Start syslog-ng and wait until every source is bound."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config(), encoding="utf-8")
        command, env = self._command("--syntax-only")
        check = subprocess.run(command, env=env, capture_output=True, timeout=20, check=False)
        if check.returncode != 0:
            raise PeerError(
                f"syslog-ng rejects the config:\n{(check.stdout + check.stderr).decode()}\n"
                f"--- config ---\n{self.config()}"
            )
        command, env = self._command(
            "-F",
            "--no-caps",
            f"--pidfile={self.directory / 'syslog-ng.pid'}",
            f"--persist-file={self.directory / 'syslog-ng.persist'}",
            f"--control={self.directory / 'syslog-ng.ctl'}",
        )
        in_main = threading.current_thread() is threading.main_thread()
        with open(self.stderr_path, "ab") as stderr:
            self._proc = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                preexec_fn=_die_with_parent if in_main else None,
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.ready_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise PeerError(f"syslog-ng exited with code {code}\n" + self.diagnostics())
            mine = _socket_inodes(self._proc.pid)
            bound = all(
                any(
                    inode in mine and (kind == "udp" or state == _TCP_LISTEN)
                    for state, inode in _inet_sockets("udp" if kind == "udp" else "tcp", port)
                )
                for kind, port in self.ports.items()
            )
            if bound:
                return
            if time.monotonic() > deadline:
                raise PeerError(
                    f"syslog-ng not ready after {self.ready_timeout} s\n" + self.diagnostics()
                )
            time.sleep(0.02)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop syslog-ng (SIGTERM, then SIGKILL after `timeout`); safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5.0)

    def records(self) -> list[dict[str, Any]]:
        """The JSON records syslog-ng wrote so far (complete lines), in file order."""
        return read_json_lines(self.output_path)

    def messages(self, n: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait (at most `timeout` s) until at least `n` records are written; return them all."""
        return wait_for_records(self.records, n, timeout, self.diagnostics)

    def diagnostics(self) -> str:
        """Ports, config, stderr and internal log: what to show when a test fails."""
        parts = [f"syslog-ng ports {self.ports}; files in {self.directory}", "--- config ---"]
        parts.append(self.config().rstrip())
        for title, path in (("stderr", self.stderr_path), ("internal log", self.internal_path)):
            parts.append(f"--- {title} ---")
            with contextlib.suppress(OSError):
                parts.append(path.read_text(encoding="utf-8", errors="replace").rstrip())
        return "\n".join(parts)

    def __enter__(self) -> SyslogNgPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
