"""How many workers `nimbus serve` runs: the flag, the variable, else half the usable CPUs."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli.errors import CliError
from gateway.cli.serve import _workers
from gateway.worker_count import (
    MAX_WORKERS,
    by_default,
    own_cgroups,
    per_cpu,
    quota_cpus,
    usable_cpus,
)


@pytest.mark.parametrize(
    ("cpus", "workers"), [(1, 1), (2, 1), (3, 1), (4, 2), (8, 4), (16, 8), (64, 8)]
)
def test_the_default_is_half_the_cpus_at_least_one_at_most_eight(cpus: int, workers: int) -> None:
    assert by_default(cpus, "local") == workers


@pytest.mark.parametrize("provider", ["docker-hosts", "kubernetes"])
def test_remote_node_providers_default_to_one_worker_whatever_the_machine(provider: str) -> None:
    assert by_default(64, provider) == 1  # several would each book every remote node


def test_zero_means_one_per_cpu_up_to_the_cap() -> None:
    assert [per_cpu(n) for n in (1, 2, 5, 64)] == [1, 2, 5, MAX_WORKERS]


V2_IN_A_SLICE = "0::/system.slice/nimbus.service\n"
V1_IN_A_GROUP = "9:name=systemd:/x\n4:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc\n"


def test_cgroup_listings_name_the_v2_group_and_the_v1_cpu_group() -> None:
    assert own_cgroups(V2_IN_A_SLICE) == ("/system.slice/nimbus.service", None)
    assert own_cgroups(V1_IN_A_GROUP) == (None, "/docker/abc")
    assert own_cgroups("") == (None, None)


def test_a_v2_quota_on_the_process_or_a_parent_caps_the_cpus(tmp_path: Path) -> None:
    own = tmp_path / "system.slice" / "nimbus.service"
    own.mkdir(parents=True)
    (own / "cpu.max").write_text("max 100000\n")  # none on the service itself
    (tmp_path / "system.slice" / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs above
    assert quota_cpus(tmp_path, V2_IN_A_SLICE) == 1.5
    (own / "cpu.max").write_text("50000 100000\n")  # the tightest one wins
    assert quota_cpus(tmp_path, V2_IN_A_SLICE) == 0.5
    assert usable_cpus(tmp_path, V2_IN_A_SLICE) == 1  # rounded up, never below one


def test_a_v1_quota_caps_the_cpus_and_minus_one_is_none(tmp_path: Path) -> None:
    group = tmp_path / "cpu" / "docker" / "abc"
    group.mkdir(parents=True)
    (group / "cpu.cfs_period_us").write_text("100000\n")
    (group / "cpu.cfs_quota_us").write_text("-1\n")
    assert quota_cpus(tmp_path, V1_IN_A_GROUP) is None
    (group / "cpu.cfs_quota_us").write_text("400000\n")
    assert quota_cpus(tmp_path, V1_IN_A_GROUP) == 4.0
    affinity = usable_cpus(tmp_path, "")
    assert usable_cpus(tmp_path, V1_IN_A_GROUP) == min(4, affinity)


def test_no_quota_or_a_garbled_one_leaves_the_affinity(tmp_path: Path) -> None:
    assert quota_cpus(tmp_path / "missing", V2_IN_A_SLICE) is None
    (tmp_path / "cpu.max").write_text("lots\n")
    assert quota_cpus(tmp_path, "0::/\n") is None
    assert usable_cpus(tmp_path, "0::/\n") == usable_cpus(tmp_path, "")


def test_the_flag_wins_over_the_variable_which_wins_over_the_machine() -> None:
    machine = by_default(usable_cpus(), "local")
    assert _workers(None, {}, "local") == machine
    assert _workers(None, {"NIMBUS_WORKERS": ""}, "local") == machine
    assert _workers(None, {"NIMBUS_WORKERS": "3"}, "local") == 3
    assert _workers(2, {"NIMBUS_WORKERS": "3"}, "local") == 2
    assert _workers(None, {}, "kubernetes") == 1


@pytest.mark.parametrize(
    ("flag", "env", "message"),
    [
        (None, {"NIMBUS_WORKERS": "many"}, "--workers takes a number, got 'many'"),
        (9, {}, "--workers must be between 1 and 8, got 9"),
        (-1, {}, "--workers must be between 1 and 8, got -1"),
    ],
)
def test_a_wrong_count_is_refused_by_name(
    flag: int | None, env: dict[str, str], message: str
) -> None:
    with pytest.raises(CliError, match=message):
        _workers(flag, env, "local")
