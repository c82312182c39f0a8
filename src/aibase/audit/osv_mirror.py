"""An OSV-compatible endpoint on loopback, serving an advisory snapshot from disk.

For air-gapped audits and for tests: `pip-audit --vulnerability-service osv --osv-url
http://127.0.0.1:PORT/v1/query`. Serves POST /v1/query, POST /v1/querybatch and
GET /v1/vulns/<id> from a directory laid out like pypa/advisory-database
(`<package>/<ID>.yaml`). Matches by listed versions and ECOSYSTEM version ranges.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from packaging.version import InvalidVersion, Version

from aibase.names import normalize_name


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as the strings the advisories wrote (OSV clients
    parse `modified` / `published` themselves)."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_advisory(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(text, Loader=_Loader)
    return loaded


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def in_ranges(version: str, ranges: list[Mapping[str, Any]]) -> bool:
    """OSV ECOSYSTEM ranges: [introduced, fixed) and [introduced, last_affected]."""
    v = _version(version)
    if v is None:
        return False
    for rng in ranges:
        if rng.get("type") != "ECOSYSTEM":
            continue
        start: Version | None = None
        active = False
        for event in rng.get("events", []):
            if "introduced" in event:
                intro = str(event["introduced"])
                start = Version("0") if intro == "0" else _version(intro)
                active = start is not None and v >= start
            elif "fixed" in event and active:
                fixed = _version(str(event["fixed"]))
                if fixed is not None and v < fixed:
                    return True
                active = False
            elif "last_affected" in event and active:
                last = _version(str(event["last_affected"]))
                if last is not None and v <= last:
                    return True
                active = False
        if active:  # introduced with no end: every later version is affected
            return True
    return False


def affects(vuln: Mapping[str, Any], package: str, version: str) -> bool:
    if vuln.get("withdrawn"):
        return False
    for aff in vuln.get("affected", []):
        pkg = aff.get("package", {})
        if pkg.get("ecosystem") != "PyPI" or normalize_name(pkg.get("name", "")) != package:
            continue
        if version in [str(x) for x in aff.get("versions", [])]:
            return True
        if in_ranges(version, aff.get("ranges", [])):
            return True
    return False


@dataclass(frozen=True)
class AdvisoryDB:
    root: Path

    @cache  # noqa: B019 - one DB per server, lives as long as it
    def for_package(self, package: str) -> tuple[dict[str, Any], ...]:
        folder = self.root / package
        if not folder.is_dir():
            # the database names folders as the package is spelled; normalize to find it
            matches = [p for p in self.root.iterdir() if normalize_name(p.name) == package]
            if not matches:
                return ()
            folder = matches[0]
        docs = []
        for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.json")):
            text = path.read_text()
            docs.append(json.loads(text) if path.suffix == ".json" else load_advisory(text))
        return tuple(docs)

    def query(self, name: str, version: str) -> list[dict[str, Any]]:
        package = normalize_name(name)
        return [v for v in self.for_package(package) if affects(v, package, version)]

    def by_id(self, vuln_id: str) -> dict[str, Any] | None:
        for path in self.root.glob(f"*/{vuln_id}.yaml"):
            return load_advisory(path.read_text())
        return None


def _handler(db: AdvisoryDB) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:  # quiet
            return

        def _send(self, code: int, body: Mapping[str, Any]) -> None:
            raw = json.dumps(body, default=str).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _one(self, q: Mapping[str, Any]) -> list[dict[str, Any]]:
            pkg = q.get("package", {})
            if pkg.get("ecosystem", "PyPI") != "PyPI" or "version" not in q:
                return []
            return db.query(pkg.get("name", ""), str(q["version"]))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self._send(400, {"message": "invalid JSON"})
                return
            if self.path.rstrip("/") == "/v1/query":
                vulns = self._one(body)
                self._send(200, {"vulns": vulns} if vulns else {})
            elif self.path.rstrip("/") == "/v1/querybatch":
                results = [
                    {
                        "vulns": [
                            {"id": v["id"], "modified": v.get("modified")} for v in self._one(q)
                        ]
                    }
                    for q in body.get("queries", [])
                ]
                self._send(200, {"results": results})
            else:
                self._send(404, {"message": f"no endpoint {self.path}"})

        def do_GET(self) -> None:
            m = re.fullmatch(r"/v1/vulns/([A-Za-z0-9._-]+)", self.path)
            vuln = db.by_id(m.group(1)) if m else None
            if vuln is None:
                self._send(404, {"message": "not found"})
            else:
                self._send(200, vuln)

    return Handler


@contextmanager
def serve(root: Path, port: int = 0) -> Iterator[str]:
    """Serve the snapshot on 127.0.0.1; yields the /v1/query URL pip-audit takes."""
    if not root.is_dir():
        raise FileNotFoundError(f"advisory snapshot {root} not found")
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(AdvisoryDB(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/query"
    finally:
        server.shutdown()
        server.server_close()
