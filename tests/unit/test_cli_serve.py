"""`nimbus serve`'s flags and NIMBUS_* variables become one Config, checked before start-up."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gateway.cli import parser
from gateway.cli.errors import CliError
from gateway.cli.serve import serve_config
from invoker.providers.docker_hosts import HostsFileError, listed_hosts
from invoker.providers.select import effective_placement


def config_of(tmp_path: Path, *flags: str, **env: str):
    args = parser().parse_args(["serve", "--data-dir", str(tmp_path / "d"), *flags])
    return serve_config(args, {"NIMBUS_ADMIN_KEY": "k", **env})


def test_a_flag_wins_over_its_variable_which_wins_over_the_default(tmp_path: Path) -> None:
    plain = config_of(tmp_path)
    assert (plain.driver, plain.vm_provider, plain.keep_alive_policy) == ("auto", "local", "budget")
    assert plain.activation_retention_days == 7 and plain.admin_key == "k"
    from_env = config_of(tmp_path, NIMBUS_DRIVER="kubernetes", NIMBUS_K8S_NAMESPACE="fns")
    assert (from_env.driver, from_env.vm_provider, from_env.k8s_namespace) == (
        "kubernetes",
        "kubernetes",  # the kubernetes driver packs onto the cluster's nodes by default
        "fns",
    )
    flagged = config_of(
        tmp_path, "--driver", "process", "--keep-alive", "30", NIMBUS_DRIVER="docker"
    )
    assert (flagged.driver, flagged.keep_alive_policy, flagged.keep_alive_s) == (
        "process",
        "fixed",
        30.0,
    )


def test_a_docker_host_list_is_passed_through_and_picks_its_provider(tmp_path: Path) -> None:
    config = config_of(tmp_path, NIMBUS_DOCKER_HOSTS="unix:///var/run/docker.sock")
    assert config.vm_provider == "docker-hosts" and config.docker_hosts_file is None
    assert config.docker_hosts_urls == "unix:///var/run/docker.sock"
    hosts = tmp_path / "hosts.toml"
    hosts.write_text('[[host]]\nid = "vm-1"\nurl = "unix:///var/run/docker.sock"\n')
    config = config_of(tmp_path, "--docker-hosts", str(hosts), "--vm-provider", "none")
    assert (config.docker_hosts_file, config.vm_provider) == (hosts, "none")


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ((), {"NIMBUS_DRIVER": "bogus"}, "unknown driver 'bogus'"),
        (("--price-book", "/nonexistent.toml"), {}, "price book: "),
        ((), {"NIMBUS_ACTIVATION_RETENTION_DAYS": "-2"}, "activation retention: must be"),
        (("--docker-hosts", "/nonexistent.toml"), {}, "docker hosts: cannot read"),
        (("--memory-overcommit", "0.5"), {}, "--memory-overcommit must be between 1.0"),
        ((), {"NIMBUS_MEMORY_OVERCOMMIT": "lots"}, "--memory-overcommit takes a number"),
    ],
)
def test_a_wrong_setting_fails_before_the_data_dir_is_touched(
    tmp_path: Path, flags: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    args = parser().parse_args(["serve", "--data-dir", str(tmp_path / "d"), *flags])
    with pytest.raises(CliError, match=message):
        serve_config(args, env)
    assert not (tmp_path / "d").exists()


def test_the_admin_key_is_made_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    args = parser().parse_args(["serve", "--data-dir", str(tmp_path / "d")])
    first = serve_config(args, {}).admin_key
    assert first.startswith("nmb_admin_") and serve_config(args, {}).admin_key == first
    mode = (tmp_path / "d" / "admin.key").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_the_one_hosts_reader_wants_engines_and_consistent_flavors(tmp_path: Path) -> None:
    with pytest.raises(HostsFileError, match="needs its engines"):
        listed_hosts(None, "")
    hosts = tmp_path / "hosts.toml"
    hosts.write_text(
        '[[host]]\nid = "a"\nurl = "unix:///x"\nvcpu = 1\nmemory_mb = 1024\nflavor = "s"\n'
        '[[host]]\nid = "b"\nurl = "unix:///y"\nvcpu = 2\nmemory_mb = 1024\nflavor = "s"\n'
    )
    with pytest.raises(HostsFileError, match="give different sizes different names"):
        listed_hosts(hosts, "")
    (one,) = listed_hosts(None, " unix:///var/run/docker.sock ,")
    assert one.id == "vm-1" and one.vcpu is None  # sized later, by its engine


def test_memory_overcommit_is_off_by_default_and_auto_placement_spreads_with_it(
    tmp_path: Path,
) -> None:
    plain = config_of(tmp_path)
    assert (plain.memory_overcommit, plain.placement_policy) == (1.0, "auto")
    assert effective_placement(plain.placement_policy, plain.memory_overcommit) == "best-fit"
    on = config_of(tmp_path, NIMBUS_MEMORY_OVERCOMMIT="2")
    assert on.memory_overcommit == 2.0
    # Deflated idle containers packed onto one node would all inflate there: spread them.
    assert effective_placement(on.placement_policy, on.memory_overcommit) == "worst-fit"
    flagged = config_of(tmp_path, "--memory-overcommit", "1.5", "--placement", "first-fit")
    assert effective_placement(flagged.placement_policy, flagged.memory_overcommit) == "first-fit"
