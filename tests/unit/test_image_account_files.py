"""Reading an image's /etc/passwd is bounded: the image is the tenant's."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from typing import Any

from invoker.drivers import image_containers
from invoker.drivers.image_containers import MAX_ACCOUNT_FILE


def tar_of(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


class FakeApi:
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.read = 0

    def get_archive(self, container_id: str, path: str) -> tuple[Iterator[bytes], Any]:
        def counted() -> Iterator[bytes]:
            for chunk in self.chunks:
                self.read += len(chunk)
                yield chunk

        return counted(), {}


class FakeClient:
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.api = FakeApi(chunks)


def test_a_small_account_file_is_read() -> None:
    client = FakeClient(iter([tar_of("passwd", b"app:x:1000:1000::/home/app:/bin/sh\n")]))
    got = image_containers._account_file(client, "c", "/etc/passwd")  # type: ignore[arg-type]
    assert got is not None and got.startswith("app:x:1000")


def test_a_huge_one_is_refused_without_reading_it_all() -> None:
    endless = (b"x" * (1 << 20) for _ in range(10_000))  # 10 GB, if anyone read it
    client = FakeClient(endless)
    assert image_containers._account_file(client, "c", "/etc/passwd") is None  # type: ignore[arg-type]
    assert client.api.read <= MAX_ACCOUNT_FILE + (2 << 20)
