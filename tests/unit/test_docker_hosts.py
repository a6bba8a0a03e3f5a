"""The docker-hosts provider's pure parts: the hosts file, enlisting, container arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main as cli_main
from invoker.drivers.base import ContainerSpec, DriverError
from invoker.drivers.docker_remote import network_name, published_port, remote_container_kwargs
from invoker.nodes.model import Flavor, NoCapacity
from invoker.nodes.placement import NodeState
from invoker.providers.docker_hosts import (
    DockerHost,
    DockerHostsProvider,
    HostsFileError,
    host_flavors,
    hosts_from_urls,
    load_docker_hosts,
    parse_docker_hosts,
    with_capacity,
)


def tls_dir(tmp_path: Path) -> Path:
    d = tmp_path / "certs"
    d.mkdir(exist_ok=True)
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (d / name).write_text("x")
    return d


def test_a_toml_hosts_file_is_read_with_defaults(tmp_path: Path) -> None:
    tls_dir(tmp_path)
    path = tmp_path / "hosts.toml"
    path.write_text(
        '[[host]]\nid = "vm-1"\nurl = "tcp://10.0.0.11:2376"\ntls = "certs"\n'
        'memory_mb = 4096\nvcpu = 2\nprice_per_hour = 0.0416\nflavor = "medium"\n'
        '[[host]]\nid = "vm-2"\nurl = "unix:///var/run/docker.sock"\n'
    )
    one, two = load_docker_hosts(path)
    assert one.tls_dir == (tmp_path / "certs").resolve() and one.address == "10.0.0.11"
    assert one.flavor_of() == Flavor("medium", 2.0, 4096, 0.0416)
    assert two.local and two.vcpu is None and not one.local
    filled = with_capacity(two, {"NCPU": 8, "MemTotal": 16 * 2**30})
    assert (filled.vcpu, filled.memory_mb) == (8.0, 16384)
    assert host_flavors([one, filled])[1].name == "8cpu-16384mb"


def test_json_hosts_files_work_too(tmp_path: Path) -> None:
    path = tmp_path / "hosts.json"
    path.write_text('{"host": [{"id": "a", "url": "tcp://127.0.0.1:2375", "memory_mb": 512}]}')
    (host,) = load_docker_hosts(path)
    assert host.memory_mb == 512 and host.tls_dir is None


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([], "at least one"),
        ([{"url": "tcp://127.0.0.1:1"}], "`id` is required"),
        ([{"id": "Bad_Id", "url": "tcp://127.0.0.1:1"}], "`id` must be"),
        ([{"id": "a", "url": "http://x:1"}], "`url` must be"),
        ([{"id": "a", "url": "tcp://10.1.2.3:2376"}], "`tls` is required"),
        ([{"id": "a", "url": "tcp://127.0.0.1:1", "tls": "nope"}], "lacks ca.pem"),
        ([{"id": "a", "url": "tcp://127.0.0.1:1", "memory_mb": "lots"}], "`memory_mb` must be"),
        ([{"id": "a", "url": "tcp://127.0.0.1:1", "vcpu": 0}], "`vcpu` must be positive"),
        ([{"id": "a", "url": "unix:///x"}, {"id": "a", "url": "unix:///y"}], "listed twice"),
    ],
)
def test_a_wrong_hosts_file_names_the_host_and_field(
    tmp_path: Path, entries: list[dict], message: str
) -> None:
    with pytest.raises(HostsFileError, match=message):
        parse_docker_hosts({"host": entries}, tmp_path)


def test_an_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(HostsFileError, match="cannot read"):
        load_docker_hosts(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[host]\n")
    with pytest.raises(HostsFileError, match=r"bad\.toml"):
        load_docker_hosts(bad)


def host(i: int, memory: int = 512) -> DockerHost:
    return DockerHost(f"vm-{i}", f"tcp://127.0.0.1:{2000 + i}", None, "127.0.0.1", 1.0, memory)


async def test_the_provider_enlists_free_engines_and_hands_them_back() -> None:
    prepared: list[str] = []

    async def prepare(host_id: str) -> None:
        prepared.append(host_id)

    hosts = [host(1), host(2), host(3, memory=2048)]
    provider = DockerHostsProvider(hosts, lambda: 1.0, prepare)
    small, big = host_flavors(hosts)
    first = await provider.provision(small)
    second = await provider.provision(small)
    assert (first.id, second.id) == ("vm-1", "vm-2") and first.state is NodeState.READY
    # No small engine left: a bigger free one will do; then nothing is left at all.
    assert (await provider.provision(small)).id == "vm-3"
    with pytest.raises(NoCapacity, match="all 3 Docker hosts"):
        await provider.provision(small)
    await provider.release("vm-2")
    assert [n.id for n in await provider.list()] == ["vm-1", "vm-3"]
    with pytest.raises(NoCapacity):  # the free engine is smaller than asked for
        await provider.provision(big)
    assert (await provider.provision(small)).id == "vm-2"
    assert prepared == ["vm-1", "vm-2", "vm-3", "vm-2"]


async def test_a_host_that_cannot_be_prepared_is_not_enlisted() -> None:
    async def broken(host_id: str) -> None:
        raise DriverError("no image")

    provider = DockerHostsProvider([host(1)], lambda: 0.0, broken)
    with pytest.raises(DriverError):
        await provider.provision(host(1).flavor_of())
    assert await provider.list() == []


def test_remote_containers_are_hardened_published_and_guarded() -> None:
    spec = ContainerSpec(
        name="nimbus-x-1",
        runtime="python:3.11",
        memory_mb=256,
        cpus=0.5,
        labels={"io.nimbus.managed": "o"},
        env={"A": "1"},
        netns_group="tenant-a",
    )
    kwargs = remote_container_kwargs(spec, "img", "net", "10.0.0.5", "tok")
    assert kwargs["ports"] == {"8080/tcp": ("10.0.0.5", None)}
    assert kwargs["network"] == "net" and kwargs["environment"]["NIMBUS_PROXY_TOKEN"] == "tok"
    assert kwargs["environment"]["A"] == "1" and "NIMBUS_SOCKET" not in kwargs["environment"]
    assert kwargs["mem_limit"] == kwargs["memswap_limit"] == "256m"
    assert kwargs["read_only"] and kwargs["cap_drop"] == ["ALL"] and kwargs["user"] == "10001"
    assert kwargs["nano_cpus"] == 500_000_000 and "volumes" not in kwargs


def test_one_network_per_deployment_and_one_for_egress() -> None:
    # Shared by tenants (inter-container traffic is off on it): a network per tenant would
    # exhaust Docker's default address pools after ~30 tenants on one VM.
    assert network_name("o", False) == network_name("o", False)
    assert network_name("o", True) != network_name("o", False)
    assert network_name("other", False) != network_name("o", False)


def test_ports_are_published_on_the_address_or_an_explicit_bind() -> None:
    assert host(1).bind_address == "127.0.0.1"
    named = DockerHost("a", "tcp://vm.example:2376", None, "vm.example", 1.0, 512)
    assert named.bind_address == "0.0.0.0"  # a name cannot be bound
    assert DockerHost("a", "tcp://x:1", None, "203.0.113.9", bind="10.0.0.5").bind_address == (
        "10.0.0.5"
    )
    with pytest.raises(HostsFileError, match="`bind` must be an IP"):
        parse_docker_hosts({"host": [{"id": "a", "url": "unix:///x", "bind": "vm"}]}, Path("."))


def test_one_flavor_name_means_one_size() -> None:
    a = DockerHost("a", "unix:///x", None, "127.0.0.1", 2.0, 4096, 0.04, "medium")
    b = DockerHost("b", "unix:///y", None, "127.0.0.1", 1.0, 2048, 0.04, "medium")
    with pytest.raises(HostsFileError, match="give different sizes different names"):
        host_flavors([a, b])
    assert (
        len(host_flavors([a, DockerHost("c", "unix:///z", None, "x", 2.0, 4096, 0.04, "medium")]))
        == 1
    )


def test_an_id_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(HostsFileError, match="`id` must be"):
        parse_docker_hosts({"host": [{"id": "vm-1\n", "url": "unix:///x"}]}, Path("."))


def test_the_published_port_is_read_from_inspect() -> None:
    attrs = {
        "NetworkSettings": {"Ports": {"8080/tcp": [{"HostIp": "1.2.3.4", "HostPort": "49153"}]}}
    }
    assert published_port(attrs) == 49153
    with pytest.raises(DriverError):
        published_port({"NetworkSettings": {"Ports": {"8080/tcp": None}}})


def test_a_list_of_docker_host_urls_is_the_short_form(tmp_path: Path) -> None:
    certs = tls_dir(tmp_path)
    one, two = hosts_from_urls("unix:///var/run/docker.sock, tcp://10.0.0.12:2376,", certs)
    assert (one.id, one.url, one.tls_dir) == ("vm-1", "unix:///var/run/docker.sock", None)
    assert (two.id, two.tls_dir, two.address) == ("vm-2", certs.resolve(), "10.0.0.12")
    assert two.vcpu is None  # sized by its engine
    with pytest.raises(HostsFileError, match="`tls` is required"):
        hosts_from_urls("tcp://10.0.0.12:2376")  # no DOCKER_CERT_PATH for a remote engine


def test_serve_refuses_a_bad_engine_list_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
    code = cli_main(
        ["serve", "--docker-hosts", "tcp://10.9.8.7:2376", "--data-dir", str(tmp_path / "d")]
    )
    assert code == 1
    assert "docker hosts: host 'vm-1': `tls` is required" in capsys.readouterr().err
    assert not (tmp_path / "d" / "nimbus.db").exists()  # nothing started
