"""onnxruntime's threads follow the cores the worker is given, not the host's."""

import os

import pytest

from stream.runtime import cores_given


@pytest.fixture
def affinity():
    return len(os.sched_getaffinity(0))


def test_a_container_cpu_limit_caps_the_cores(tmp_path, affinity):
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # a limit of 1.5 CPUs
    assert cores_given(tmp_path) == min(affinity, 2)
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a CPU: still one thread
    assert cores_given(tmp_path) == 1


def test_no_limit_or_no_cgroup_leaves_the_affinity(tmp_path, affinity):
    assert cores_given(tmp_path) == affinity  # no cpu.max there
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cores_given(tmp_path) == affinity
    (tmp_path / "cpu.max").write_text("garbage\n")
    assert cores_given(tmp_path) == affinity
