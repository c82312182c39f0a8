"""The registry, as the OCI distribution API sees it: the only HTTP client of a registry
(`client`: token auth, TLS, retries, digests), whom it trusts (`trust`), the logins `docker
login` left (`credentials`), the one image-reference parser (`refs`) and the OCI image-spec
shapes (`oci`). Running a local registry is host work (`host.local_registry`).

May import: errors, log.
"""
