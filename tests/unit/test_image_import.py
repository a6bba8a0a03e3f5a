"""`nimbus images import`: which engines a tarball goes to, a wrong file refused before any
engine is asked, and one engine's failure reported without stopping the others (the real
local engine is exercised in tests/integration/test_own_image.py)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import docker
import pytest

from invoker.image_import import ImportFailed, check_tarball, import_image, pool_engines


def tarball(path: Path, names: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as archive:
        for name, data in names.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


class Image:
    def __init__(self, tags: list[str]) -> None:
        self.tags = tags
        self.short_id = "sha256:abc"


class Engine:
    """A client whose `images.load` reads the stream and names what it loaded, or fails."""

    def __init__(self, fails: bool = False) -> None:
        self.fails = fails
        self.read = b""
        self.closed = False
        self.images = self

    def load(self, stream: Any) -> list[Image]:
        if self.fails:
            raise docker.errors.APIError("engine refused")
        self.read = stream.read()
        return [Image(["team/fn:1"])]

    def close(self) -> None:
        self.closed = True


def test_only_image_tarballs_are_taken(tmp_path: Path) -> None:
    with pytest.raises(ImportFailed, match="tar archive"):
        check_tarball(tarball(tmp_path / "a.tar", {}).with_suffix(".missing"))
    (tmp_path / "b.tar").write_text("not a tar")
    with pytest.raises(ImportFailed, match="tar archive"):
        check_tarball(tmp_path / "b.tar")
    with pytest.raises(ImportFailed, match="manifest"):
        check_tarball(tarball(tmp_path / "c.tar", {"x.txt": b"x"}))
    check_tarball(tarball(tmp_path / "d.tar", {"manifest.json": b"[]"}))


def test_every_engine_is_tried_and_each_outcome_reported(tmp_path: Path) -> None:
    path = tarball(tmp_path / "fn.tar", {"manifest.json": json.dumps([]).encode()})
    good, bad, last = Engine(), Engine(fails=True), Engine()
    lines: list[str] = []
    outcomes = import_image(
        path, [("local", lambda: good), ("vm-1", lambda: bad), ("vm-2", lambda: last)], lines.append
    )
    assert [(o.engine, o.images, o.error is None) for o in outcomes] == [
        ("local", ("team/fn:1",), True),
        ("vm-1", (), False),
        ("vm-2", ("team/fn:1",), True),
    ]
    assert good.read == path.read_bytes() and good.closed and bad.closed
    assert "vm-1: failed: engine refused" in lines


def test_the_pool_is_the_local_engine_plus_the_listed_hosts() -> None:
    assert [name for name, _ in pool_engines(None, "", None)] == ["local"]
    listed = pool_engines(None, "tcp://127.0.0.1:2376,tcp://localhost:2377", None)
    assert listed[0][0] == "local" and len(listed) == 3
