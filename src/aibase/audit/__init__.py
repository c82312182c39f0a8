"""The supply-chain gate (`./ai audit`): pip-audit runs under one allowlist policy.

`pipaudit` runs pip-audit so that it cannot pass silently (--strict, a canary first, SBOMs),
`allowlist` is the policy (accepted findings, each with an owner and an expiry),
`osv_mirror` serves an advisory snapshot as an OSV endpoint on loopback, and `gate` audits
every committed lock (and what an image holds) into one summary. What an image holds and
how it was built: `contents` reads its layers from the registry, `sbom` is its CycloneDX
document (made, read, compared, chosen among those attached), `provenance` reads BuildKit's
SLSA statement.

May import: errors, github, log, names, config, host, registry.
"""
