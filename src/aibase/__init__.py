"""ai-base: build, tag, push and verify the multi-arch AI base images.

Packages, each over the ones it may import (its __init__ says what it owns and which):
registry, config, host, audit, build, release, tools. Top-level modules: errors, log,
names, github, state (below every package), probe (runs inside an image) and cli (above
every package). tests/unit/test_architecture.py holds the layering; docs/architecture.md
shows it.
"""
