#!/usr/bin/env python3
"""Merge the keys ai-base needs into Docker's daemon.json, keeping everything else.

Usage: daemon_json.py PATH   (prints "changed" or "unchanged"; exit 2 on a file it cannot read)

Multi-platform builds on the default (docker) buildx driver need the containerd image store.
Runtimes (nvidia), registry mirrors, data-root and every other key stay as they are; the old
file is kept beside the new one as PATH.bak-<UTC time>. Standard library only: this runs
before the project's venv exists.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

NEEDED: dict[str, Any] = {"features": {"containerd-snapshotter": True}}


def merge(current: dict[str, Any], needed: dict[str, Any] = NEEDED) -> dict[str, Any]:
    """current with needed's keys set, recursively into tables; nothing removed."""
    out = dict(current)
    for key, value in needed.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def main(argv: list[str]) -> int:
    path = Path(argv[1])
    text = path.read_text() if path.exists() else ""
    try:
        current = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        print(
            f"{path} is not valid JSON ({exc}); fix it by hand, nothing was changed",
            file=sys.stderr,
        )
        return 2
    if not isinstance(current, dict):
        print(f"{path} does not hold a JSON object; nothing was changed", file=sys.stderr)
        return 2
    merged = merge(current)
    if merged == current:
        print("unchanged")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        backup = path.with_name(f"{path.name}.bak-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
        backup.write_text(text)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(merged, indent=2) + "\n")
    tmp.replace(path)
    print("changed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
