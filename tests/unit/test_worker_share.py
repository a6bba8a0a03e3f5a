"""Each worker's share of the machine under `nimbus serve --workers N` (`invoker/share.py`):
the parts add up to what one process would have, and remote providers keep one worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli.commands import main
from gateway.cli.errors import ExitCode
from invoker.assemble import worker_share
from invoker.settings import InvokerSettings
from invoker.share import Share, Whole, refusal, share_of, split

MACHINE_MB = 24_105
ASKED = Whole(
    host_memory_mb=MACHINE_MB,
    min_nodes=1,
    max_nodes=4,
    stem_cells=(("python:3.11", 128, 2), ("nodejs:18", 128, 1)),
)


def shares(whole: Whole, workers: int) -> list[Share]:
    """Every worker's share, by index."""
    return [share_of(whole, str(index), workers) for index in range(workers)]


def test_one_process_has_the_whole_machine() -> None:
    alone = share_of(ASKED, "", 1)
    assert alone == Share(
        pool_memory_mb=MACHINE_MB * 3 // 4,
        node_memory_mb=MACHINE_MB * 9 // 10,
        min_nodes=1,
        max_nodes=4,
        stem_cells=ASKED.stem_cells,
    )
    assert share_of(ASKED, "0", 1) == alone  # a lone worker of one is the same


@pytest.mark.parametrize("workers", [2, 3, 5, 8])
def test_the_workers_memory_adds_up_to_the_machine_once(workers: int) -> None:
    alone, parts = share_of(ASKED, "", 1), shares(ASKED, workers)
    assert sum(p.pool_memory_mb for p in parts) == alone.pool_memory_mb
    assert sum(p.node_memory_mb for p in parts) == alone.node_memory_mb
    sizes = {p.node_memory_mb for p in parts}
    assert max(sizes) - min(sizes) <= 1  # an even split


def test_an_operators_pool_budget_is_the_gateways_not_each_workers() -> None:
    asked = Whole(host_memory_mb=MACHINE_MB, pool_memory_mb=1001)
    assert [p.pool_memory_mb for p in shares(asked, 2)] == [501, 500]


def test_stem_cells_total_what_was_asked() -> None:
    first, second = shares(ASKED, 2)
    assert first.stem_cells == (("python:3.11", 128, 1), ("nodejs:18", 128, 1))
    assert second.stem_cells == (("python:3.11", 128, 1),)  # the odd one is worker 0's
    for workers in (2, 3, 4):
        totals: dict[str, int] = {}
        for part in shares(ASKED, workers):
            for runtime, _, count in part.stem_cells:
                totals[runtime] = totals.get(runtime, 0) + count
        assert totals == {"python:3.11": 2, "nodejs:18": 1}


def test_node_counts_split_but_every_worker_may_have_a_node() -> None:
    assert [(p.min_nodes, p.max_nodes) for p in shares(ASKED, 2)] == [(1, 2), (0, 2)]
    # More workers than nodes allowed: one each, or some worker's functions could not run.
    assert [p.max_nodes for p in shares(ASKED, 8)] == [1] * 8
    assert sum(p.min_nodes for p in shares(ASKED, 8)) == 1


def test_split_parts_sum_to_the_total_and_differ_by_one_at_most() -> None:
    for total in range(0, 30):
        for workers in range(1, 9):
            parts = [split(total, i, workers) for i in range(workers)]
            assert sum(parts) == total and max(parts) - min(parts) <= 1
    with pytest.raises(ValueError, match="worker 2 is not one of 2"):
        split(4, 2, 2)


def test_the_invokers_share_comes_from_its_settings(tmp_path: Path) -> None:
    settings = InvokerSettings(data_dir=tmp_path, worker="1", workers=2, pool_memory_mb=800)
    share = worker_share(settings, 2000)
    assert (share.pool_memory_mb, share.node_memory_mb) == (400, 900)
    assert share.stem_cells == (("python:3.11", 128, 1),)  # the defaults: python 2, nodejs 1


def test_remote_providers_keep_one_worker() -> None:
    assert refusal("local", 8) is None and refusal("none", 2) is None
    assert refusal("docker-hosts", 1) is None and refusal("kubernetes", 1) is None
    message = refusal("docker-hosts", 2)
    assert message is not None and "--workers 2" in message and "--workers 1" in message


def test_serve_refuses_several_workers_over_remote_nodes_before_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NIMBUS_ADMIN_KEY", "k")
    data = tmp_path / "data"
    argv = ["serve", "--data-dir", str(data), "--workers", "2", "--vm-provider", "kubernetes"]
    assert main(argv) == ExitCode.USAGE
    out = capsys.readouterr()
    assert "nimbus: --workers 2 does not work with the kubernetes provider" in out.err
    assert "serving on" not in out.out
