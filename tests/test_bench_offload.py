"""The offload benchmark's larger-than-RAM set-up (issue 19): the memory cgroup helper, and the scaling rows measured
in a child process (what full mode does when the table would fit in RAM) come back intact."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` is a top-level directory


def test_a_memory_cgroup_is_made_where_the_hierarchy_is_writable_and_skipped_where_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import memory_cgroup

    v1 = tmp_path / "v1"
    v1.mkdir()
    (v1 / "cgroup.procs").write_text("")
    monkeypatch.setattr(memory_cgroup, "V1", v1)
    monkeypatch.setattr(memory_cgroup, "V2", tmp_path / "absent")
    made = memory_cgroup.MemoryCgroup.make(3 * 2**30, name="probe")
    assert made is not None and (v1 / "probe" / "memory.limit_in_bytes").read_text() == str(3 * 2**30)
    made.join()
    assert (v1 / "probe" / "cgroup.procs").read_text().strip().isdigit()

    monkeypatch.setattr(memory_cgroup, "V1", tmp_path / "absent")  # neither hierarchy: run unconfined
    assert memory_cgroup.MemoryCgroup.make(2**30) is None


def test_the_step_rows_measured_in_a_child_process_come_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import bench_offload
    from benchmarks.memory_cgroup import MemoryCgroup

    made: list[int] = []

    def fake_make(limit_bytes: int) -> MemoryCgroup:  # a cgroup that confines nothing: the protocol is tested
        made.append(limit_bytes)
        group = MemoryCgroup(tmp_path / "group", limit_bytes)
        monkeypatch.setattr(group, "join", lambda: None)
        monkeypatch.setattr(group, "remove", lambda: None)
        return group

    monkeypatch.setattr(bench_offload.MemoryCgroup, "make", staticmethod(fake_make))
    rows = bench_offload.scaling_beyond_ram([10**3, 10**4], 1, tmp_path / "scaling", beyond_ram=True)
    table_bytes = 10**4 * 64 * 4
    assert made == [int(table_bytes * bench_offload.CONFINE_FRACTION)]
    by_target = {r.target: r for r in rows}
    ratio = by_target["offload step time rows 1e+04 / 1e+03 (memory-mapped)"]
    assert ratio.ratio is not None and ratio.ratio > 0 and ratio.passed is not None
    ram = by_target["offload table file / RAM this process may use"]
    assert "child process in a memory cgroup" in ram.note and ram.measured.startswith("0.00 GiB")


def test_no_cgroup_measures_unconfined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--no-cgroup` (a shared machine): no cgroup is made, the rows are measured in this process, and a table that
    fits in the RAM fails the larger-than-RAM row instead of passing it by confinement."""
    from benchmarks import bench_offload

    def refuse(limit_bytes: int) -> None:
        raise AssertionError("a memory cgroup was made")

    monkeypatch.setattr(bench_offload.MemoryCgroup, "make", staticmethod(refuse))
    rows = bench_offload.scaling_beyond_ram([10**3, 10**4], 1, tmp_path / "scaling", beyond_ram=True, confine=False)
    ram = {r.target: r for r in rows}["offload table file / RAM this process may use"]
    assert ram.passed is False and "memory cgroup" not in ram.note
