"""SBOM and provenance on the real fixture build, in the real local registry (distribution
2.8: no referrers API, so the fallback tag): what build-all attaches, that inspect and audit
find it from the image alone, and what verify refuses. The refusals use images derived from
the session's fixture (FROM it, one small step), never the fixture's own digests: a referrer
attached to those would follow every later test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aibase.audit.attached import read_contents
from aibase.audit.provenance import leaked_secrets, read_provenance, secret_markers
from aibase.audit.sbom import SBOM_TYPE, compare_sbom, read_sbom
from aibase.errors import NotFound, VerifyError
from aibase.registry.client import RegistryClient
from aibase.registry.oci import image_entries, make_index
from aibase.registry.referrers import (
    attach,
    index_attestations,
    list_referrers,
    read_referrers,
    referrers_tag,
)

from .attested import Pushed, attach_sbom, push_attested
from .conftest import FIXTURE, FIXTURE_CONFIG, IT_REPO, REGISTRY, Built, Run, env_for, invoke

SITE = "/opt/venv/lib/python3.11/site-packages"
SOURCE = "https://github.com/cerebral/ai-base"  # the fixture config's project source


def _client() -> RegistryClient:
    return RegistryClient(REGISTRY)


def _verify(ref: str, out: Path, **env: str) -> Run:
    return invoke(
        "verify",
        "--config",
        str(FIXTURE_CONFIG),
        "--repository",
        IT_REPO,
        "--variant",
        "fixture",
        "--ref",
        ref,
        "--no-smoke",
        env=env_for(out, **env),
    )


def _derive(built: Built, name: str, step: str, **kwargs: Any) -> Pushed:
    """An amd64 image FROM the fixture's with one more step, built as a cell is."""
    base = f"{REGISTRY}/{IT_REPO}@{built.platform_digests['linux/amd64']}"
    return push_attested(f"FROM {base}\n{step}\n", IT_REPO, f"attest-{name}", **kwargs)


def _index_with(
    client: RegistryClient, built: Built, entries: list[dict[str, Any]], name: str
) -> str:
    """An index of these amd64 entries and the fixture's arm64 image (with its provenance);
    returns its ref."""
    fixture = client.get_manifest(IT_REPO, built.index_digest)
    index = make_index([*entries, *image_entries(fixture, "linux/arm64", None)])
    client.put_manifest(IT_REPO, f"attest-{name}-index", index)
    return f"{REGISTRY}/{IT_REPO}@{index.digest}"


def _problems(run: Run) -> list[str]:
    return [ln.strip()[2:] for ln in run.output.splitlines() if ln.strip().startswith("- ")]


def test_every_platform_image_carries_a_checked_sbom_and_provenance(built: Built) -> None:
    """The layout the registry serves: under each image's fallback tag, one SBOM artifact
    whose manifest refers to the image; its document lists what the layers hold (numpy with
    the lock's hashes, the venv's pip, the OS packages) and the base's digest; the index
    holds mode=max provenance naming this revision and no secret of the build."""
    assert "SBOM sha256:" in built.run.output and "<== verify fixture: ok" in built.run.output
    lock = (FIXTURE / "locks" / "fixture-linux-amd64.txt").read_text()
    with _client() as client:
        index = client.get_manifest(IT_REPO, built.index_digest)
        mirror = client.head_manifest("mirror/library/python", "3.11-slim")
        for platform, image in built.platform_digests.items():
            listed = client.get_manifest(IT_REPO, referrers_tag(image)).json["manifests"]
            assert [e["artifactType"] for e in listed] == [SBOM_TYPE]
            assert list_referrers(client, IT_REPO, image) == listed
            artifact = client.get_manifest(IT_REPO, listed[0]["digest"]).json
            print(f"\nthe SBOM artifact of {platform}:\n{json.dumps(artifact, indent=2)}")
            assert artifact["subject"]["digest"] == image
            assert artifact["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
            assert artifact["layers"][0]["mediaType"] == SBOM_TYPE
            (found,) = read_referrers(client, IT_REPO, image, SBOM_TYPE)
            doc = json.loads(found.payload)
            assert doc["specVersion"] == "1.5" and doc["metadata"]["component"]["version"] == image
            facts = read_sbom(found.payload)
            held = read_contents(client, IT_REPO, client.get_manifest(IT_REPO, image))
            assert compare_sbom(facts, held) == []
            names = {n for n, _, _ in facts.python}
            assert {"numpy", "fastapi", "pip"} <= names
            assert {"gcc", "git", "ca-certificates"} <= {n for n, _, _ in facts.os_packages}
            assert facts.base_digest == mirror
            if platform == "linux/amd64":
                numpy = next(c for c in doc["components"] if c["name"] == "numpy")
                props = {p["name"]: p["value"] for p in numpy["properties"]}
                hashes = props["aibase:lock-sha256"].split(",")
                assert len(hashes) > 1 and all(f"sha256:{h}" in lock for h in hashes)
                assert props["aibase:path"] == f"{SITE}/numpy-1.26.4.dist-info"
            (attestation,) = index_attestations(client, IT_REPO, index, image)
            statement = json.loads(attestation.statement)
            prov = read_provenance(statement)
            assert image in prov.subjects and prov.vcs_revision == built_revision(built)
            assert prov.args["label:org.opencontainers.image.source"] == SOURCE  # mode=max
            assert built.ca_bundle is not None
            marker = secret_markers("the CA bundle", built.ca_bundle.read_text())
            assert len(marker) > 2  # the bundle, and each certificate: the marker CA's last
            assert leaked_secrets(statement, marker) == []


def built_revision(built: Built) -> str:
    with _client() as client:
        image = client.get_manifest(IT_REPO, built.platform_digests["linux/amd64"])
        config = json.loads(client.get_blob(IT_REPO, image.json["config"]["digest"]))
    return str(config["config"]["Labels"]["org.opencontainers.image.revision"])


def test_inspect_finds_the_sbom_and_provenance_from_the_image_alone(built: Built) -> None:
    ref = f"{REGISTRY}/{IT_REPO}@{built.index_digest}"
    shown = invoke("inspect", "--config", str(FIXTURE_CONFIG), ref)
    assert shown.returncode == 0, shown.output
    with _client() as client:
        for image in built.platform_digests.values():
            (found,) = read_referrers(client, IT_REPO, image, SBOM_TYPE)
            assert f"    sbom {found.digest}" in shown.output
    assert shown.output.count("    provenance sha256:") == 2
    amd64 = built.platform_digests["linux/amd64"]
    one = invoke(
        "inspect", "--config", str(FIXTURE_CONFIG), f"{REGISTRY}/{IT_REPO}@{amd64}", "--sbom"
    )
    assert one.returncode == 0, one.output
    document = json.loads(one.output[one.output.index("{\n") : one.output.rindex("}") + 1])
    assert document["metadata"]["component"]["version"] == amd64


def test_a_package_installed_after_the_sbom_was_made_is_caught(
    built: Built, tmp_path: Path
) -> None:
    """The derived image holds one more distribution than the SBOM attached to it (one made
    before the install): verify reads the layers and names it, and nothing else."""
    dist = f"{SITE}/late_package-1.0.dist-info"
    step = f"RUN mkdir -p {dist} && printf 'Name: late-package\\nVersion: 1.0\\n' > {dist}/METADATA"
    late = _derive(built, "late", step, sbom=False)
    fixture_amd64 = built.platform_digests["linux/amd64"]
    with _client() as client:
        attach_sbom(client, IT_REPO, late.image, fixture_amd64, "linux/amd64", late.base)
        ref = _index_with(client, built, late.entries, "late")
    run = _verify(ref, tmp_path / "out")
    assert run.returncode == VerifyError.exit_code
    (problem,) = _problems(run)
    assert problem.startswith("linux/amd64: SBOM sha256:")
    assert problem.endswith(
        f"does not list the Python distribution(s) the image holds: late-package 1.0 ({dist})"
    )


def test_an_index_with_the_sbom_of_another_image_is_refused(built: Built, tmp_path: Path) -> None:
    """The fixture's own amd64 SBOM (byte for byte) attached to a derived image: it refers
    to the new image but describes the fixture's; verify and inspect refuse it."""
    other = _derive(built, "other", "LABEL io.cerebral.test=other", sbom=False)
    fixture_amd64 = built.platform_digests["linux/amd64"]
    with _client() as client:
        (theirs,) = read_referrers(client, IT_REPO, fixture_amd64, SBOM_TYPE)
        subject = client.get_manifest(IT_REPO, other.image)
        ours = attach(
            client,
            IT_REPO,
            subject,
            SBOM_TYPE,
            SBOM_TYPE,
            theirs.payload,
            annotations={},
            title="x.cdx.json",
        )
        ref = _index_with(client, built, other.entries, "other")
    run = _verify(ref, tmp_path / "out")
    assert run.returncode == VerifyError.exit_code
    assert _problems(run) == [
        f"linux/amd64: SBOM {ours} describes another image ({fixture_amd64}), not {other.image}"
    ]
    shown = invoke("inspect", "--config", str(FIXTURE_CONFIG), ref, "--sbom")
    assert shown.returncode == VerifyError.exit_code and "cannot be believed" in shown.output


def test_a_referrer_pushed_by_someone_else_does_not_make_a_bad_image_pass(
    built: Built, tmp_path: Path
) -> None:
    """A bad image (no provenance in its index, an SBOM that misses a package) stays refused
    when someone attaches a truthful second SBOM and its provenance as referrers."""
    dist = f"{SITE}/late_package-1.0.dist-info"
    step = f"RUN mkdir -p {dist} && printf 'Name: late-package\\nVersion: 1.0\\n' > {dist}/METADATA"
    bad = _derive(built, "someone", step, sbom=False)
    fixture_amd64 = built.platform_digests["linux/amd64"]
    with _client() as client:
        attach_sbom(client, IT_REPO, bad.image, fixture_amd64, "linux/amd64", bad.base)
        attach_sbom(client, IT_REPO, bad.image, bad.image, "linux/amd64", bad.base)  # truthful
        (provenance,) = index_attestations(
            client, IT_REPO, client.get_manifest(IT_REPO, bad.top), bad.image
        )
        subject = client.get_manifest(IT_REPO, bad.image)
        in_toto = "application/vnd.in-toto+json"
        attach(
            client,
            IT_REPO,
            subject,
            in_toto,
            in_toto,
            provenance.statement,
            annotations={},
            title="provenance.json",
        )
        ref = _index_with(client, built, bad.entries[:1], "someone")  # its image, no provenance
    run = _verify(ref, tmp_path / "out")
    assert run.returncode == VerifyError.exit_code
    problems = _problems(run)
    assert problems[0].startswith(f"linux/amd64: no SLSA provenance in the index for {bad.image}")
    assert problems[1].startswith(f"linux/amd64: 2 SBOMs refer to {bad.image} and disagree")
    assert len(problems) == 2


def test_an_image_without_an_sbom_is_named_and_not_promoted(built: Built, tmp_path: Path) -> None:
    bare = _derive(built, "bare", "LABEL io.cerebral.test=bare", sbom=False)
    with _client() as client:
        ref = _index_with(client, built, bare.entries, "bare")
    run = _verify(ref, tmp_path / "out")
    assert run.returncode == VerifyError.exit_code
    (problem,) = _problems(run)
    assert problem.startswith(f"linux/amd64: no SBOM refers to {bare.image}: build the cell with")
    single = f"{REGISTRY}/{IT_REPO}@{bare.image}"
    shown = invoke("inspect", "--config", str(FIXTURE_CONFIG), single, "--sbom")
    assert shown.returncode == NotFound.exit_code and "has no SBOM attached" in shown.output


def test_a_provenance_holding_a_build_secret_is_refused(built: Built, tmp_path: Path) -> None:
    """A marker index URL passed as a build argument (the mistake BuildKit secrets exist to
    prevent) is recorded by mode=max provenance; verify, told the index URL file, refuses
    naming what leaked and never printing it."""
    url = "https://ci:marker-token-4f1d9c@pypi.internal.invalid/simple"
    secret = tmp_path / "index-url"
    secret.write_text(url + "\n")
    leak = _derive(built, "leak", "ARG PIP_INDEX_URL", build_args=(f"PIP_INDEX_URL={url}",))
    with _client() as client:
        ref = _index_with(client, built, leak.entries, "leak")
    run = _verify(ref, tmp_path / "out", AIBASE_PIP_INDEX_URL_FILE=str(secret))
    assert run.returncode == VerifyError.exit_code
    (problem,) = _problems(run)
    assert "holds the value of the index URL file" in problem
    assert "marker-token-4f1d9c" not in run.output
