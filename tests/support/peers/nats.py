"""A real NATS JetStream cluster for tests: nats-server nodes on loopback high ports.

Each node has its own `server_name`, client port, cluster (route) port, monitoring port and
store directory, and runs as a child process of the test (never a system service: Debian's
package installs a unit and a config on port 4222, which nothing here uses). Nodes can be
SIGKILLed and restarted on the same ports and store, as a crashed server would be.

`missing_nats_server()` says why the cluster cannot run (None when it can); tests call
`need(missing_nats_server() is None, ...)`: a skip, or a failure under CI=true.

Security (tests/interop/test_nats_security.py): `NatsTLS` puts a server certificate on the
client port (`tls://` URLs then), optionally requiring client certificates (`verify`);
`make_nkey_user` writes an nkey user seed and returns the public key the server config names.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ports import free_ports

__all__ = [
    "NatsCluster",
    "NatsNode",
    "NatsTLS",
    "make_nkey_user",
    "missing_nats_server",
    "missing_nkeys",
    "nats_server_path",
]


def nats_server_path() -> str | None:
    return shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if os.access("/usr/sbin/nats-server", os.X_OK) else None
    )


def missing_nats_server() -> str | None:
    if nats_server_path() is None:
        return "nats-server is not installed (apt-get install nats-server)"
    try:
        import nats  # noqa: F401
    except ImportError:
        return "nats-py is not installed (pip install 'syslogkit[nats]')"
    return None


def missing_nkeys() -> str | None:
    """Why nkey and creds authentication cannot run (nats-py needs the `nkeys` package)."""
    try:
        import nkeys  # noqa: F401
    except ImportError:
        return "nkeys is not installed (pip install 'syslogkit[nats]')"
    return None


def make_nkey_user(path: Path) -> str:
    """Write a new random user nkey seed (`SU...`) to `path` (mode 0600); return its public
    key (`U...`), which a server's `authorization { users: [{nkey: ...}] }` names."""
    import nkeys

    seed: bytes = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    path.touch(mode=0o600)
    path.write_bytes(seed + b"\n")
    public: bytes = nkeys.from_seed(bytearray(seed)).public_key
    return public.decode()


@dataclass(frozen=True)
class NatsTLS:
    """TLS on the client port: the server's certificate; with `verify`, clients must present
    a certificate signed by `ca_file`."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None = None
    verify: bool = False

    def config(self) -> str:
        items = [f'cert_file: "{self.cert_file}"', f'key_file: "{self.key_file}"', "timeout: 5"]
        if self.ca_file is not None:
            items.append(f'ca_file: "{self.ca_file}"')
        if self.verify:
            items.append("verify: true")
        return "tls { " + ", ".join(items) + " }\n"


@dataclass
class NatsNode:
    name: str
    port: int
    cluster_port: int
    http_port: int
    folder: Path
    scheme: str = "nats"
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.folder / "server.log"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def jsz(self) -> dict[str, Any]:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.http_port}/jsz?streams=true", timeout=2
        ) as reply:
            data: dict[str, Any] = json.loads(reply.read())
            return data

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class NatsCluster:
    """`size` nodes (3: a cluster with Raft; 1: a single JetStream server); `tls`: clients
    connect with TLS (node URLs are `tls://`)."""

    def __init__(
        self, folder: Path, size: int = 3, *, extra_config: str = "", tls: NatsTLS | None = None
    ) -> None:
        self.folder = folder
        self.extra_config = extra_config
        self.tls = tls
        self.nodes: list[NatsNode] = []
        ports = free_ports(3 * size)
        for i in range(size):
            node_dir = folder / f"n{i + 1}"
            (node_dir / "store").mkdir(parents=True, exist_ok=True)
            self.nodes.append(
                NatsNode(
                    f"n{i + 1}",
                    ports[3 * i],
                    ports[3 * i + 1],
                    ports[3 * i + 2],
                    node_dir,
                    "tls" if tls else "nats",
                )
            )

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """All nodes, comma separated (as `--nats` takes them)."""
        return ",".join(self.urls)

    def _config(self, node: NatsNode) -> str:
        routes = ", ".join(f"nats-route://127.0.0.1:{n.cluster_port}" for n in self.nodes)
        cluster = ""
        if len(self.nodes) > 1:
            cluster = (
                f"cluster {{ name: syslogkit-test, listen: 127.0.0.1:{node.cluster_port},"
                f" routes: [{routes}] }}\n"
            )
        return (
            f"server_name: {node.name}\n"
            f"listen: 127.0.0.1:{node.port}\n"
            f"http: 127.0.0.1:{node.http_port}\n"
            f'jetstream {{ store_dir: "{node.folder / "store"}" }}\n'
            f"{self.tls.config() if self.tls else ''}{cluster}{self.extra_config}\n"
        )

    def start_node(self, node: NatsNode) -> None:
        conf = node.folder / "server.conf"
        conf.write_text(self._config(node))
        path = nats_server_path()
        assert path is not None
        with open(node.log, "ab") as log:
            node.proc = subprocess.Popen(
                [path, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
            )

    def start(self, timeout: float = 15.0) -> NatsCluster:
        for node in self.nodes:
            self.start_node(node)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Until every running node answers and (for a cluster) a meta leader is elected."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                leaders = {
                    (n.jsz().get("meta_cluster") or {}).get("leader")
                    for n in self.nodes
                    if n.running
                }
                if len(self.nodes) == 1 or (leaders and None not in leaders):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"NATS cluster not ready in {timeout} s: {self.logs()}")
            time.sleep(0.1)

    def stream_leader(self, stream: str) -> NatsNode | None:
        """The node that leads `stream` now (None while there is none)."""
        for node in self.nodes:
            if not node.running:
                continue
            with contextlib.suppress(OSError, ValueError):
                for account in node.jsz().get("account_details") or []:
                    for info in account.get("stream_detail") or []:
                        if info.get("name") == stream:
                            leader = (info.get("cluster") or {}).get("leader")
                            for candidate in self.nodes:
                                if candidate.name == leader:
                                    return candidate
        return None

    def kill(self, node: NatsNode) -> None:
        """SIGKILL, as a crash."""
        if node.proc is not None and node.proc.poll() is None:
            node.proc.send_signal(signal.SIGKILL)
            node.proc.wait(10)

    def restart(self, node: NatsNode) -> None:
        self.kill(node)
        self.start_node(node)

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(10)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait(5)

    def logs(self, tail: int = 2000) -> str:
        out = []
        for node in self.nodes:
            with contextlib.suppress(OSError):
                out.append(f"--- {node.name}\n{node.log.read_text(errors='replace')[-tail:]}")
        return "\n".join(out)

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- syslogkit collectors as processes (edges and stores that tests SIGKILL) --------------------


class CollectProcess:
    """`python -m syslogkit collect ARGS` in a process of its own, with a stats file.

    `start()` returns once it printed its first line (listening, or reading from JetStream);
    `urls` holds the `listening on` URLs; `kill()` is a SIGKILL, `stop()` a SIGTERM (it drains).
    """

    def __init__(self, folder: Path, *args: str, env: dict[str, str] | None = None) -> None:
        import sys

        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.stats_file = folder / "stats.json"
        self.out = folder / "out.log"
        self.err = folder / "err.log"
        self.argv = [
            sys.executable, "-m", "syslogkit", "collect", *args,
            "--stats-file", str(self.stats_file), "--stats-interval", "0.2", "--no-uvloop",
        ]  # fmt: skip
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.urls: list[str] = []

    def start(self, timeout: float = 20.0) -> CollectProcess:
        with open(self.out, "ab") as out, open(self.err, "ab") as err:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=err, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.out.read_text(errors="replace")
            if "listening on" in text or "publishing" in text or "storing" in text:
                time.sleep(0.1)
                text = self.out.read_text(errors="replace")
                self.urls = [
                    line.split("listening on ", 1)[1].strip()
                    for line in text.splitlines()
                    if line.startswith("listening on ")
                ]
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"collector did not start: {self.logs()}")

    def port(self, scheme: str) -> int:
        for url in self.urls:
            if url.startswith(scheme + "://"):
                return int(url.rsplit(":", 1)[1])
        raise KeyError(scheme)

    def stats(self) -> dict[str, Any]:
        with contextlib.suppress(OSError, ValueError):
            data: dict[str, Any] = json.loads(self.stats_file.read_text())
            return data
        return {}

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def logs(self) -> str:
        out = self.out.read_text(errors="replace")[-2000:] if self.out.exists() else ""
        err = self.err.read_text(errors="replace")[-3000:] if self.err.exists() else ""
        return f"stdout: {out}\nstderr: {err}"
