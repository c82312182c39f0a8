"""Package names, compared the one way PyPI does (PEP 503): `Foo_Bar.baz` == `foo-bar-baz`.

Top level: locks, audits and smoke checks compare names the same way.
May import: nothing.
"""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[-_.]+")


def normalize_name(name: str) -> str:
    return _SEPARATORS.sub("-", name).lower()
