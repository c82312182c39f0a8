"""How the engine hands GPUs to containers: the nvidia runtime, or NVIDIA devices in CDI."""

from __future__ import annotations

from aibase.host.engine import gpu_access_from, gpu_requests

CDI_SPEC = """cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: all
"""


def test_the_nvidia_runtime_is_recognised() -> None:
    assert gpu_access_from({"Runtimes": {"runc": {}, "nvidia": {}}}, []) == "nvidia"


def test_cdi_devices_are_recognised_without_the_runtime() -> None:
    assert gpu_access_from({"Runtimes": {"runc": {}}}, [CDI_SPEC]) == "cdi"
    requests = gpu_requests("cdi")
    assert requests is not None and requests[0]["Driver"] == "cdi"
    assert requests[0]["DeviceIDs"] == ["nvidia.com/gpu=all"]


def test_no_gpu_means_none() -> None:
    assert gpu_access_from({"Runtimes": {"runc": {}}}, ["kind: vendor.com/fpga\n"]) is None
    assert gpu_requests(None) is None
