"""An image's size against its payload, read from its layer blobs (the bench's measure).

payload: the bytes of the files the image's filesystem ends with (base and installed files),
caches left out; uncompressed: every file in every layer. Their ratio is what layering
costs: a file a later layer replaces or deletes still ships in the earlier one.
Pure: blobs in, numbers out.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass

from aibase.errors import BuildError

# where a build leaves caches if it is careless: counted apart, never as payload
CACHE_DIRS = ("root/.cache/", "var/cache/apt/archives/", "var/lib/apt/lists/", "tmp/")
_WHITEOUT, _OPAQUE = ".wh.", ".wh..wh..opq"


@dataclass(frozen=True)
class ImageSize:
    compressed: int  # the layer blobs as pushed
    uncompressed: int  # every regular file in every layer
    payload: int  # the final filesystem's regular files, caches left out
    cache: int  # the final filesystem's files under CACHE_DIRS

    @property
    def ratio(self) -> float:
        """Image size per byte of payload: 1.0 is no file shipped twice, no cache."""
        return self.uncompressed / self.payload if self.payload else 0.0


def _members(blob: bytes) -> Iterable[tarfile.TarInfo]:
    if blob[:4] == b"\x28\xb5\x2f\xfd":
        raise BuildError(
            "a zstd layer: this Python's tarfile reads gzip and plain layers only",
            "measure a gzip build (`--compression gzip`)",
        )
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r|*") as tar:
        yield from tar


def measure(blobs: Iterable[bytes]) -> ImageSize:
    """Apply each layer in order (OCI whiteouts included) and count bytes."""
    files: dict[str, int] = {}  # path -> size in the filesystem so far
    compressed = uncompressed = 0
    for blob in blobs:
        compressed += len(blob)
        for m in _members(blob):
            path = posixpath.normpath(m.name.removeprefix("./").lstrip("/"))
            path = "" if path == "." else path
            parent, name = posixpath.split(path)
            if name == _OPAQUE:  # the directory's earlier content is gone
                _drop(files, parent, keep_self=True)
            elif name.startswith(_WHITEOUT):
                _drop(files, posixpath.join(parent, name[len(_WHITEOUT) :]), keep_self=False)
            elif m.isfile():
                uncompressed += m.size
                files[path] = m.size
            else:  # a directory, link or device replaces a file of that name
                files.pop(path, None)
    cache = sum(s for p, s in files.items() if any((p + "/").startswith(d) for d in CACHE_DIRS))
    return ImageSize(compressed, uncompressed, sum(files.values()) - cache, cache)


def _drop(files: dict[str, int], path: str, *, keep_self: bool) -> None:
    prefix = path + "/" if path else ""
    for p in [p for p in files if p.startswith(prefix) or (p == path and not keep_self)]:
        del files[p]
