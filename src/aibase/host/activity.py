"""What else runs on this host: its process table, read from /proc, and a watch that keeps
reading it while something is timed (the bench refuses a figure another build overlapped).
Build clients on other hosts sharing a remote engine are not seen from here."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

PROC = Path("/proc")


class Entry(NamedTuple):
    pid: int
    ppid: int
    argv: tuple[str, ...]

    def line(self) -> str:
        return f"pid {self.pid}: {' '.join(self.argv)[:160]}"


def process_table(root: Path = PROC) -> list[Entry]:
    """Every process's id, parent and command line (kernel threads, which have none, and
    processes that ended while read are left out)."""
    out = []
    for entry in root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # `pid (comm) state ppid ...`: comm may hold spaces and parentheses
        fields = stat.rsplit(")", 1)[-1].split()
        argv = tuple(a for a in cmdline.split("\0") if a)
        if argv and len(fields) > 1:
            out.append(Entry(int(entry.name), int(fields[1]), argv))
    return out


@contextmanager
def watching(find: Callable[[list[Entry]], list[str]], every: float = 2.0) -> Iterator[set[str]]:
    """Yields the set of what `find` reported in the process table, read now and every
    `every` seconds until the block ends (and once more then)."""
    seen: set[str] = set()
    stop = threading.Event()

    def poll() -> None:
        while True:
            seen.update(find(process_table()))
            if stop.wait(every):
                return

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()
        seen.update(find(process_table()))
