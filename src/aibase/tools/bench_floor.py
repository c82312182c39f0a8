"""The floor of a cold build: the least the cell's wheels take with no Docker at all. uv
downloads and unpacks them into an empty folder with an empty cache (the lock's own index
lines apply), then that folder is compressed the way the bench's layers are: gzip at BuildKit's
level, in-process, a tar of each distribution's files on its own, a core each (BuildKit
compresses an image's layers side by side, and no layer is finer than a distribution).
`./ai bench` judges each cold build against it (bench_report.FLOOR_GOAL); `./ai bench
--floor-only` measures it alone.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import tarfile
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import BinaryIO, cast

from aibase import log
from aibase.build.locks import find_uv
from aibase.build.plan import Cell
from aibase.build.run_context import RunContext
from aibase.config.model import Config
from aibase.errors import BenchRefused, BuildError, LockError
from aibase.host import activity, proc
from aibase.tools.bench_checks import foreign_builds
from aibase.tools.bench_plan import COMPRESSION, GZIP_LEVEL, floor_argv, show_floor
from aibase.tools.bench_report import Floor, floor_table

_UV_PIN = re.compile(r"^uv==(\S+)", re.M)


class _Gzip:
    """A write-only sink that gzips what it is given and counts the bytes in and out; the
    output itself is dropped (only its size and the time to make it count)."""

    def __init__(self, level: int) -> None:
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        self.unpacked = 0
        self.compressed = 0

    def write(self, data: bytes) -> int:
        self.unpacked += len(data)
        self.compressed += len(self._deflate.compress(data))
        return len(data)

    def close(self) -> None:
        self.compressed += len(self._deflate.flush())


def compress_tree(folder: Path, level: int = GZIP_LEVEL, streams: int = 0) -> tuple[int, int]:
    """A tar of each distribution's files in `folder` (parts_of), gzipped at `level` on its
    own, `streams` at a time (0: a core each), the largest first: (their bytes, their
    compressed bytes). No layer is finer than one distribution, and BuildKit compresses an
    image's layers side by side: one stream for all would overstate the floor."""
    parts = sorted(parts_of(folder), key=lambda p: sum(f.lstat().st_size for f in p), reverse=True)
    with ThreadPoolExecutor(max_workers=streams or os.cpu_count() or 1) as pool:
        sizes = list(pool.map(partial(_compress, folder, level=level), parts))  # zlib frees
        # the GIL while it compresses
    return sum(u for u, _ in sizes), sum(c for _, c in sizes)


def parts_of(folder: Path) -> list[list[Path]]:
    """The files of `folder`, each in one part: a distribution's (its RECORD names them),
    then what no RECORD names (what uv writes beside them) as one more."""
    files = sorted(Path(d) / f for d, _, names in os.walk(folder) for f in names)
    left = set(files)
    parts = []
    for record in sorted(folder.glob("*.dist-info/RECORD")):
        rows = csv.reader(record.read_text().splitlines())
        named = {Path(os.path.normpath(folder / row[0])) for row in rows if row}
        mine = [f for f in files if f in named and f in left]
        left -= set(mine)
        parts.append(mine)
    return [p for p in [*parts, sorted(left)] if p]


def _compress(folder: Path, part: list[Path], level: int) -> tuple[int, int]:
    sink = _Gzip(level)
    out = cast(BinaryIO, sink)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=1 << 20) as tar:
        for path in part:
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    sink.close()
    return sink.unpacked, sink.compressed


def uv_error(output: str) -> str:
    """uv's innermost cause (`error: ...`, then `Caused by: ...` lines) as `: <words>`, or ""."""
    causes = [
        line.strip().removeprefix("error:").removeprefix("Caused by:").strip()
        for line in output.splitlines()
        if line.startswith("error:") or line.strip().startswith("Caused by:")
    ]
    return f": {causes[-1][:300]}" if causes else ""


def uv_version(uv: str) -> str:
    """`uv 0.13.9 (...)` -> `0.13.9`."""
    result = proc.run([uv, "--version"], timeout=proc.QUICK)
    words = result.stdout.split()
    return words[1] if result.ok and len(words) > 1 else "unknown"


def pinned_uv(config: Config, cell: Cell) -> str:
    """The uv release the images install with (uv.txt beside the variant's Dockerfile)."""
    pins = config.variant(cell.variant).dockerfile.parent / "uv.txt"
    found = _UV_PIN.search(pins.read_text()) if pins.is_file() else None
    return found.group(1) if found else ""


def measure_floor(
    config: Config, cell: Cell, work: Path, repeats: int, *, strict: bool = True
) -> Floor:
    """The cell's floor, `repeats` times, each from an empty folder and cache under `work`.
    A run another build overlapped is refused (`strict`, the bench) or said to read high."""
    lock = config.variant(cell.variant).lock_file(cell.platform)
    name = f"{cell.variant}/{cell.platform}"
    if not lock.is_file():
        raise LockError(f"bench floor {name}: no lock {lock}", "run `./ai lock` for the cell")
    uv = find_uv()
    version, pinned = uv_version(uv), pinned_uv(config, cell)
    if pinned and version != pinned:
        log.warn(f"the floor runs uv {version}; the images install with uv {pinned}")
    installs: list[float] = []
    compresses: list[float] = []
    sizes = (0, 0)
    for _ in range(repeats):
        shutil.rmtree(work, ignore_errors=True)
        with activity.watching(lambda table: foreign_builds(table, os.getpid())) as seen:
            started = time.monotonic()
            result = proc.run(floor_argv(uv, config, cell, work), timeout=proc.LONG)
            installed = time.monotonic()
            if result.ok:
                sizes = compress_tree(work / "site")
            compressed = time.monotonic()
        shutil.rmtree(work, ignore_errors=True)
        if not result.ok:
            log.write_line((result.stdout + result.stderr)[-3000:])
            raise BuildError(
                f"bench floor {name}: uv could not install the lock's wheels"
                + uv_error(result.stderr),
                "see uv's output above: the floor downloads from the indexes the lock names",
            )
        if seen:
            message = f"the floor of {name} ran beside another build: {sorted(seen)[0]}"
            if strict:
                raise BenchRefused(message, "rerun the bench when the engine is idle")
            log.warn(f"{message}; it reads high")
        installs.append(round(installed - started, 1))
        compresses.append(round(compressed - installed, 1))
    how = f"{COMPRESSION} -{GZIP_LEVEL}, {os.cpu_count() or 1} streams at a time"
    floor = Floor(tuple(installs), tuple(compresses), *sizes, how, version)
    log.info(
        f"floor {name}: {floor.timing().cell()} s (download+unpack {installs}, compress "
        f"{compresses}; {sizes[0] / 1e6:.1f} MB -> {sizes[1] / 1e6:.1f} MB)"
    )
    return floor


def run_floor(ctx: RunContext, cells: list[Cell], repeats: int, dry_run: bool) -> None:
    """`./ai bench --floor-only`: each cell's floor, printed as the bench's floor table; no
    build, no results file. Another build beside it is said, not refused."""
    if dry_run:
        for cell in cells:
            work = Path(tempfile.gettempdir()) / "aibase-floor-XXXXXXXX" / cell.slug / "floor"
            show_floor(ctx.config, cell, work, repeats)
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="aibase-floor-") as tmp:
        for cell in cells:
            with log.step(f"floor {cell.variant}/{cell.platform}"):
                work = Path(tmp) / cell.slug / "floor"
                floor = measure_floor(ctx.config, cell, work, repeats, strict=False)
                rows.append((f"{cell.variant}/{cell.platform}", floor, None))
    print("\n".join(floor_table(rows)).strip() + "\n")
