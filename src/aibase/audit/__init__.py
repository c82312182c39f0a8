"""The supply-chain gate (`invoke audit`): `pipaudit` (pip-audit runs that cannot pass
silently: --strict, a canary first, SBOMs), `allowlist` (the policy: accepted findings with
an owner and an expiry), `osv_mirror` (an OSV endpoint on loopback serving an advisory
snapshot) and `gate` (every committed lock, and what an image holds, under one policy, one
summary).

May import: errors, github, log, names, config, host.
"""
