"""A small filesystem that fills up: a tmpfs the test mounts (root, or CAP_SYS_ADMIN), and
grows later with a remount, so that a collector's store meets a real full disk.

`small_disk(folder, size, need)` mounts it (skips with the reason, or fails under CI=true, when
mounting is not allowed) and unmounts it at the end.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from support.peers import Need


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=10, check=False)


class SmallDisk:
    """A tmpfs of `size` (mount's form: 10m) at `path`; `grow(size)` remounts it bigger."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        self.size = size

    def mount(self) -> str | None:
        """Mount it; the reason when that is not possible."""
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            done = _mount("-t", "tmpfs", "-o", f"size={self.size}", "tmpfs", str(self.path))
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"cannot run mount(8): {exc}"
        if done.returncode != 0:
            return f"cannot mount a tmpfs (root or CAP_SYS_ADMIN needed): {done.stderr.strip()}"
        return None

    def grow(self, size: str) -> None:
        """Remount with room for more: the space comes back while the collector runs."""
        done = _mount("-o", f"remount,size={size}", str(self.path))
        assert done.returncode == 0, done.stderr
        self.size = size

    def unmount(self) -> None:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True, timeout=10)


@contextlib.contextmanager
def small_disk(path: Path, size: str, need: Need) -> Iterator[SmallDisk]:
    """A mounted `SmallDisk`, unmounted at the end."""
    disk = SmallDisk(path, size)
    why = disk.mount()
    need(why is None, why or "")
    try:
        yield disk
    finally:
        disk.unmount()
