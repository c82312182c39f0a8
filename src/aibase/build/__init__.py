"""From a validated config to pushed cells: planning, locks, the preflight, builds, merges.

Pure: `plan` (cells, tags, labels, build args, the buildx command), `layers` (layer groups
and the rendered Dockerfile), `lock_format` (the lock file format), `inputs` (the files a
build is made from, the renderer's modules among them). With I/O: `locks`
(hash-locked requirements resolved and checked with uv), `preflight` (every check before a
build), `cell` (building and pushing one cell), `merge` (a variant's cells into one index
under an immutable tag). `run_context` (what a run knows before its first step) lives here
because it is made from the plan's build facts and every build step takes it; release/ and
tools/ receive it from here.

May import: errors, log, names, state, audit (the allowlist: accepted vulnerabilities become
labels), config, host, registry.
"""
