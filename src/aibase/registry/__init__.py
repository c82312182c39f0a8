"""A registry as the OCI distribution API sees it, and the only HTTP client of one.

`client` speaks the API (manifests, blobs, tags, digests) over `session` (one host's HTTP:
TLS or, on loopback, plain HTTP decided once; retries; token auth; the only importer of
httpx). `trust` decides whom it trusts, `credentials` reads the logins `docker login` left, `refs`
is the one image-reference parser and `oci` the image-spec shapes. Running a local registry
starts a program, so it is host work (`host.local_registry`); other HTTP (the webhook in
`release.notify`, the OSV mirror in `audit.osv_mirror`) talks to no registry.

May import: errors, log.
"""
