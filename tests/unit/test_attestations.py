"""verify's SBOM and provenance checks, end to end over the fake registry (the real client,
the referrers fallback tag, BuildKit-shaped attestations), and what each one refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aibase.audit.provenance import read_provenance, same_repository, secret_markers
from aibase.build.plan import REQUIRED_LABELS
from aibase.config.loader import load_config
from aibase.config.model import Config
from aibase.errors import VerifyError
from aibase.registry import referrers
from aibase.registry.refs import parse_ref
from aibase.release.promote import promote_variant
from aibase.release.verify import VerifyResult, raise_if_failed, verify_index
from aibase.state import MergeRecord, SmokeRecord, VariantState, VerifyRecord

from . import attested
from .conftest import OCI_MANIFEST, FakeRegistry, WriteConfig

REPO = "cerebral/ai-base"
REV = "f" * 40
LABELS = {k: "x" for k in REQUIRED_LABELS} | {
    "org.opencontainers.image.revision": REV,
    "io.cerebral.ai-base.variant": "cpu",
}
MARKER_URL = "https://ci:s3cr3t-marker-token@pypi.internal.invalid/simple"


@pytest.fixture
def cfg(write_config: WriteConfig) -> Config:
    return load_config(write_config(), env={})


def images(fake: FakeRegistry, **files: dict[str, str]) -> dict[str, str]:
    """An amd64 and an arm64 image (`files` per arch replaces what one holds)."""
    return {
        f"linux/{arch}": fake.add_image(REPO, arch, LABELS, files=files.get(arch))
        for arch in ("amd64", "arm64")
    }


def index_of(fake: FakeRegistry, entries: list[dict[str, Any]]) -> str:
    return fake.add_manifest(REPO, {"mediaType": attested.OCI_INDEX, "manifests": entries})


def image_entries(found: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "mediaType": OCI_MANIFEST,
            "digest": d,
            "platform": {"os": "linux", "architecture": p.split("/")[1]},
        }
        for p, d in found.items()
    ]


def verify(
    fake: FakeRegistry, cfg: Config, index: str, secrets: list[tuple[str, str]] | None = None
) -> VerifyResult:
    with fake.client() as client:
        ref = parse_ref(f"localhost:5000/{REPO}@{index}")
        return verify_index(client, cfg, cfg.variant("cpu"), ref, REV, secrets or [])


def test_an_index_as_build_all_leaves_it_passes_and_names_its_sbom_and_provenance(
    fake_registry: FakeRegistry, cfg: Config
) -> None:
    index = fake_registry.add_index(REPO, images(fake_registry))
    result = verify(fake_registry, cfg, index)
    assert result.problems == ()
    for image in result.images:
        assert image.sbom.startswith("sha256:") and image.provenance.startswith("sha256:")


def test_an_image_without_an_sbom_blocks_the_promotion_naming_the_fix(
    fake_registry: FakeRegistry, cfg: Config
) -> None:
    found = images(fake_registry)
    entries = image_entries(found)
    for platform, digest in found.items():  # provenance, but no SBOM attached
        statement = attested.provenance(digest, platform, revision=REV)
        entries.append(fake_registry.add_provenance(REPO, digest, statement))
    index = index_of(fake_registry, entries)
    result = verify(fake_registry, cfg, index)
    assert (
        f"linux/amd64: no SBOM refers to {found['linux/amd64']}: build the cell with "
        in (result.problems[0])
    )
    assert "`./ai build-all`" in result.problems[0]
    state = VariantState(
        "cpu",
        "localhost:5000",
        REPO,
        MergeRecord("localhost:5000", REPO, REV, cfg.config_digest, index, ("t",), found),
        VerifyRecord(index, found, {"cpu": None, "cpu-py3.11-torch2.4.1": None}),
        {p: SmokeRecord(p, d, ()) for p, d in found.items()},
    )
    with fake_registry.client() as client, pytest.raises(VerifyError, match="no SBOM refers to"):
        promote_variant(client, cfg, cfg.variant("cpu"), state, revision=REV)
    assert fake_registry.puts == []  # the floating tag was never written
    with pytest.raises(VerifyError):
        raise_if_failed(result)


def test_a_package_installed_after_the_sbom_was_made_is_caught(
    fake_registry: FakeRegistry, cfg: Config
) -> None:
    later = attested.image_files("amd64") | {
        f"{attested.SITE}/requests-2.25.0.dist-info/METADATA": "Name: requests\nVersion: 2.25.0\n"
    }
    found = images(fake_registry, amd64=later)
    entries = image_entries(found)
    for platform, digest in found.items():
        statement = attested.provenance(digest, platform, revision=REV)
        entries.append(fake_registry.add_provenance(REPO, digest, statement))
        before = attested.image_files(platform.split("/")[1])  # the SBOM made before the install
        fake_registry.attach_sbom(
            REPO, digest, attested.sbom_document(REPO, before, digest, platform, REV)
        )
    result = verify(fake_registry, cfg, index_of(fake_registry, entries))
    assert len(result.problems) == 1
    assert "linux/amd64: SBOM sha256:" in result.problems[0]
    assert result.problems[0].endswith(
        "does not list the Python distribution(s) the image holds: requests 2.25.0 "
        f"(/{attested.SITE}/requests-2.25.0.dist-info)"
    )
    amd64 = next(i for i in result.images if i.platform == "linux/amd64")
    assert amd64.sbom == ""  # never named as checked


def test_an_index_with_the_sbom_of_another_image_is_refused(
    fake_registry: FakeRegistry, cfg: Config
) -> None:
    found = images(fake_registry)
    other = fake_registry.add_image(REPO, "amd64", LABELS | {"x": "y"})
    entries = image_entries(found)
    for platform, digest in found.items():
        statement = attested.provenance(digest, platform, revision=REV)
        entries.append(fake_registry.add_provenance(REPO, digest, statement))
    files = attested.image_files("amd64")
    fake_registry.attach_sbom(
        REPO, found["linux/amd64"], attested.sbom_document(REPO, files, other, "linux/amd64", REV)
    )
    arm = found["linux/arm64"]
    fake_registry.attach_sbom(
        REPO,
        arm,
        attested.sbom_document(REPO, attested.image_files("arm64"), arm, "linux/arm64", REV),
    )
    result = verify(fake_registry, cfg, index_of(fake_registry, entries))
    assert result.problems == (
        f"linux/amd64: SBOM {_sboms(fake_registry, found['linux/amd64'])[0]} describes another "
        f"image ({other}), not {found['linux/amd64']}",
    )


def _sboms(fake: FakeRegistry, image: str) -> list[str]:
    listed = json.loads(fake.manifests[(REPO, referrers.referrers_tag(image))][1])
    return [e["digest"] for e in listed["manifests"]]


def test_a_referrer_pushed_by_someone_else_does_not_make_a_bad_image_pass(
    fake_registry: FakeRegistry, cfg: Config
) -> None:
    """A bad image (its SBOM misses what it holds) stays refused when someone attaches a
    second, truthful SBOM; an image without provenance in its index stays refused when
    someone attaches provenance as a referrer."""
    later = attested.image_files("amd64") | {
        f"{attested.SITE}/requests-2.25.0.dist-info/METADATA": "Name: requests\nVersion: 2.25.0\n"
    }
    found = images(fake_registry, amd64=later)
    amd, arm = found["linux/amd64"], found["linux/arm64"]
    entries = image_entries(found)
    entries.append(
        fake_registry.add_provenance(
            REPO, arm, attested.provenance(arm, "linux/arm64", revision=REV)
        )
    )
    for platform, digest, files in (
        ("linux/amd64", amd, attested.image_files("amd64")),
        ("linux/arm64", arm, attested.image_files("arm64")),
    ):
        fake_registry.attach_sbom(
            REPO, digest, attested.sbom_document(REPO, files, digest, platform, REV)
        )
    fake_registry.attach_sbom(
        REPO, amd, attested.sbom_document(REPO, later, amd, "linux/amd64", REV)
    )
    statement = json.dumps(attested.provenance(amd, "linux/amd64", revision=REV)).encode()
    with fake_registry.client() as client:
        subject = client.get_manifest(REPO, amd)
        referrers.attach(
            client,
            REPO,
            subject,
            "application/vnd.in-toto+json",
            "application/vnd.in-toto+json",
            statement,
            annotations={},
            title="p",
        )
    result = verify(fake_registry, cfg, index_of(fake_registry, entries))
    assert f"linux/amd64: no SLSA provenance in the index for {amd}" in result.problems[0]
    assert result.problems[1].startswith(f"linux/amd64: 2 SBOMs refer to {amd} and disagree")
    assert len(result.problems) == 2


def _verify_provenance(
    fake: FakeRegistry, cfg: Config, secrets: list[tuple[str, str]] | None = None, **changes: Any
) -> VerifyResult:
    found = images(fake)
    entries = image_entries(found)
    for platform, digest in found.items():
        statement = attested.provenance(digest, platform, revision=REV, **changes)
        entries.append(fake.add_provenance(REPO, digest, statement))
        files = attested.image_files(platform.split("/")[1])
        fake.attach_sbom(REPO, digest, attested.sbom_document(REPO, files, digest, platform, REV))
    return verify(fake, cfg, index_of(fake, entries), secrets)


@pytest.mark.parametrize(
    ("changes", "refused"),
    [
        ({"vcs_revision": "e" * 40}, f"names revision {'e' * 40}, the labels {REV}"),
        ({"vcs_revision": ""}, f"names revision (none), the labels {REV}"),
        (
            {"vcs_source": "https://github.com/someone/fork.git"},
            "built from https://github.com/someone/fork.git, not https://example.invalid/ai-base",
        ),
        (
            {"label_source": "https://github.com/someone/fork"},
            "records source https://github.com/someone/fork, not this repository",
        ),
        ({"mode": "min"}, "does not record the build's parameters (mode=min?)"),
        ({"subject": "sha256:" + "9" * 64}, f"describes {'sha256:' + '9' * 64}, not sha256:"),
    ],
)
def test_provenance_must_name_this_repository_and_the_labels_revision(
    fake_registry: FakeRegistry, cfg: Config, changes: dict[str, Any], refused: str
) -> None:
    result = _verify_provenance(fake_registry, cfg, **changes)
    assert len(result.problems) == 2, result.problems  # once per platform
    assert all(refused in p for p in result.problems), result.problems


def test_provenance_from_this_repository_passes_however_git_spells_it(
    fake_registry: FakeRegistry, cfg: Config
) -> None:
    result = _verify_provenance(fake_registry, cfg, vcs_source="git@example.invalid:ai-base.git")
    assert result.problems == ()
    assert same_repository("https://x-access-token@example.invalid/ai-base.git", cfg.source)
    assert not same_repository("https://example.invalid/ai-base-fork", cfg.source)


def test_a_secret_in_the_provenance_is_refused_naming_what_it_is_not_its_value(
    fake_registry: FakeRegistry, cfg: Config
) -> None:
    markers = secret_markers("the index URL file", MARKER_URL + "\n")
    assert ("the index URL file (its token)", "s3cr3t-marker-token") in markers
    leaked = {"build-arg:PIP_INDEX_URL": MARKER_URL.replace("ci:", "someone:")}
    result = _verify_provenance(fake_registry, cfg, markers, args=leaked)
    assert len(result.problems) == 2
    assert "holds the value of the index URL file (its token): rotate it" in result.problems[0]
    assert "s3cr3t" not in "".join(result.problems)
    clean = _verify_provenance(FakeRegistry(), cfg, markers)
    assert clean.problems == ()  # the secrets' ids alone (mode=max records them) are no leak


def test_a_ca_bundle_is_looked_for_certificate_by_certificate() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIBmarkerbody\n-----END CERTIFICATE-----\n"
    markers = dict((v, w) for w, v in secret_markers("the CA bundle", "# corp\n" + pem * 2))
    assert (
        markers["-----BEGIN CERTIFICATE-----\nMIIBmarkerbody\n"] == "the CA bundle (a certificate)"
    )
    assert secret_markers("x", "short") == []  # too short to look for without false alarms


def test_buildkit_s_provenance_is_read_for_its_materials_and_vcs() -> None:
    statement = attested.provenance(
        "sha256:" + "1" * 64, "linux/arm64", revision=REV, vcs_source="/work/main"
    )
    prov = read_provenance(statement)
    assert prov.subjects == ("sha256:" + "1" * 64,)
    assert (prov.vcs_source, prov.vcs_revision) == ("/work/main", REV)
    (base,) = prov.materials
    assert (base.name, base.reference, base.platform) == (attested.BASE, "3.11-slim", "linux/arm64")
    with pytest.raises(ValueError, match="not SLSA provenance"):
        read_provenance({"predicateType": "https://spdx.dev/Document", "predicate": {}})


def test_attaching_keeps_the_fallback_tag_listing_each_artifact_once(
    fake_registry: FakeRegistry,
) -> None:
    image = fake_registry.add_image(REPO, "amd64", LABELS)
    with fake_registry.client() as client:
        subject = client.get_manifest(REPO, image)
        assert not referrers.has_referrers_api(client, REPO, image)
        first = referrers.attach(
            client, REPO, subject, "a/b", "a/b", b"one", annotations={}, title="1"
        )
        again = referrers.attach(
            client, REPO, subject, "a/b", "a/b", b"one", annotations={}, title="1"
        )
        second = referrers.attach(
            client, REPO, subject, "a/b", "a/b", b"two", annotations={}, title="2"
        )
        assert first == again
        listed = referrers.list_referrers(client, REPO, image)
        assert [e["digest"] for e in listed] == [first, second]
        found = referrers.read_referrers(client, REPO, image, "a/b")
    assert [(r.subject, r.payload) for r in found] == [(image, b"one"), (image, b"two")]
    manifest = json.loads(fake_registry.manifests[(REPO, first)][1])
    assert manifest["subject"]["digest"] == image
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"


@pytest.mark.parametrize(
    ("field", "value", "refused"),
    [
        (
            "base",
            "sha256:" + "9" * 64,
            f"names the base {'sha256:' + '9' * 64}, which the provenance",
        ),
        ("platform", "linux/arm64", "says platform linux/arm64, not linux/amd64"),
    ],
)
def test_an_sbom_naming_another_base_or_platform_is_refused(
    fake_registry: FakeRegistry, cfg: Config, field: str, value: str, refused: str
) -> None:
    found = images(fake_registry)
    entries = image_entries(found)
    for platform, digest in found.items():
        statement = attested.provenance(digest, platform, revision=REV)
        entries.append(fake_registry.add_provenance(REPO, digest, statement))
        files = attested.image_files(platform.split("/")[1])
        doc = attested.sbom_document(REPO, files, digest, platform, REV)
        if platform == "linux/amd64" and field == "base":
            doc["components"][0]["version"] = value
        if platform == "linux/amd64" and field == "platform":
            doc["metadata"]["component"]["properties"][0]["value"] = value
        fake_registry.attach_sbom(REPO, digest, doc)
    result = verify(fake_registry, cfg, index_of(fake_registry, entries))
    assert len(result.problems) == 1 and refused in result.problems[0], result.problems


def test_a_clone_of_a_local_clone_is_a_local_source_not_another_repository(
    fake_registry: FakeRegistry, cfg: Config
) -> None:
    # the workflow replay's jobs check out from a file:// origin (on GitHub: the https URL);
    # like a plain path it names no repository, and the revision still has to match
    result = _verify_provenance(fake_registry, cfg, vcs_source="file:///tmp/replay/origin")
    assert result.problems == ()
    assert _verify_provenance(
        fake_registry, cfg, vcs_source="file:///tmp/replay/origin", vcs_revision="e" * 40
    ).problems
