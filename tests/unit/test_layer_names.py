"""Layer names for the report's chart, from an image config's history as BuildKit writes it
(the fixture image's, amd64, on a stand-in base)."""

from __future__ import annotations

from aibase.release.layer_names import base_layer_count, name_layers, step_name
from aibase.release.verify import layer_steps

# created_by of each history entry that made a layer, in order (15 layers)
FIXTURE_STEPS = (
    "ADD rootfs-amd64.tar / # buildkit",
    "RUN |2 PYTHON_VERSION=3.11 TARGETARCH=amd64 /bin/sh -c rm -f /etc/apt/apt.conf.d/docker-clean"
    "  && apt-get update  && apt-get install -y --no-install-recommends       build-essential gcc",
    'RUN |2 PYTHON_VERSION=3.11 TARGETARCH=amd64 /bin/sh -c "python${PYTHON_VERSION}" -m venv '
    "/opt/venv  && /opt/venv/bin/python -m pip uninstall --yes --quiet setuptools",
    "WORKDIR /app",
    *["COPY /layer/ /opt/venv/ # buildkit"] * 9,
    "COPY /report/ /opt/ai-base/ # buildkit",
    "RUN /bin/sh -c pip check  && dpkg-query --show --showformat='${Package} ${Version}\\n' "
    "> /opt/ai-base/os-packages.txt # buildkit",
)
GROUPS = ("numpy", *(f"bin-{i:02d}" for i in range(8)))


def test_each_layer_is_named_by_its_group_or_its_step() -> None:
    names = name_layers(FIXTURE_STEPS, 1, GROUPS, stand_in=True)
    assert names == (
        "stand-in base",
        "RUN apt-get install",
        "RUN python${PYTHON_VERSION} -m venv",
        "WORKDIR /app",
        "group numpy",
        *(f"group bin-{i:02d}" for i in range(8)),
        "COPY /report/ /opt/ai-base/",
        "RUN pip check",
    )
    assert len(set(names)) == len(names)


def test_without_the_groups_or_the_base_the_steps_still_name_them_uniquely() -> None:
    names = name_layers(FIXTURE_STEPS, 0, (), stand_in=False)
    assert names[0] == "ADD rootfs-amd64.tar /"
    assert names[4:7] == (
        "COPY /layer/ /opt/venv/",
        "COPY /layer/ /opt/venv/ (2)",
        "COPY /layer/ /opt/venv/ (3)",
    )
    several = name_layers(FIXTURE_STEPS, 2, GROUPS, stand_in=False)
    assert several[:2] == ("base 1", "base 2")


def test_the_base_counts_only_as_a_prefix_of_the_image() -> None:
    assert base_layer_count(("a", "b", "c"), ("a", "b")) == 2
    assert base_layer_count(("a", "b", "c"), ("x",)) == 0  # another base, or it moved
    assert base_layer_count(("a",), ()) == 0


def test_history_lines_up_with_the_layers_or_names_nothing() -> None:
    config = {
        "history": [
            {"created_by": "ARG X", "empty_layer": True},
            {"created_by": "ADD a /"},
            {"created_by": 'CMD ["bash"]', "empty_layer": True},
            {"created_by": "RUN /bin/sh -c make"},
        ]
    }
    assert layer_steps(config, (10, 20)) == ("ADD a /", "RUN /bin/sh -c make")
    assert layer_steps(config, (10, 20, 30)) == ()  # a mismatch names nothing
    assert step_name("RUN /bin/sh -c make") == "RUN make"


def test_groups_copied_to_the_root_are_named_like_those_copied_to_the_venv() -> None:
    """Since the group layers are reproducible their copies go to / (the layer holds opt/venv
    itself); images built before still name their groups."""
    steps = tuple(s.replace("/layer/ /opt/venv/", "/layer/ /") for s in FIXTURE_STEPS)
    assert steps != FIXTURE_STEPS
    names = name_layers(steps, 1, GROUPS, stand_in=True)
    assert names[4:13] == tuple(f"group {g}" for g in GROUPS)
