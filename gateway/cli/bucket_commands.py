"""`nimbus buckets ...`: buckets, and objects streamed in and out.

`put` sends a file as it reads it and `get` writes as it receives, so neither holds a
large object in memory; on a terminal a progress line shows how far each has got.
"""

from __future__ import annotations

import argparse
import mimetypes
import os
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from gateway.cli import views
from gateway.cli.client import Client, expect
from gateway.cli.errors import UsageError
from gateway.cli.grammar import Sub, command, listing_command
from gateway.cli.progress import CountingReader, Progress
from gateway.cli.session import client, emit, terminal_width

STDOUT = "-"


def object_path(bucket: str, key: str) -> str:
    """An object's URL path; the key's `/` stay, everything else unsafe is escaped."""
    return f"/v1/buckets/{bucket}/objects/{urllib.parse.quote(key, safe='/')}"


def cmd_list(args: argparse.Namespace) -> int:
    """List buckets."""
    payload = client(args).get("/v1/buckets")
    return emit(args, payload, lambda p: views.buckets(p, terminal_width()))


def cmd_create(args: argparse.Namespace) -> int:
    """Create a bucket (or confirm it exists)."""
    reply = client(args).call("PUT", f"/v1/buckets/{args.bucket}")
    answer = expect(reply, 200, 201)
    said = "created" if reply.status == 201 else "exists:"
    return emit(args, answer, lambda a: [f"{said} bucket {a['name']}"])


def cmd_delete(args: argparse.Namespace) -> int:
    """Delete an empty bucket."""
    answer = expect(client(args).call("DELETE", f"/v1/buckets/{args.bucket}"), 200)
    return emit(args, answer, lambda a: [f"deleted bucket {a['deleted']}"])


def cmd_objects(args: argparse.Namespace) -> int:
    """List a bucket's objects."""
    query = {"prefix": args.prefix, "limit": args.limit, "start_after": args.start_after}
    payload = client(args).get(f"/v1/buckets/{args.bucket}/objects", query)
    return emit(args, payload, lambda p: views.objects(p, terminal_width()))


def cmd_put(args: argparse.Namespace) -> int:
    """Upload a file as an object, streamed."""
    path = Path(args.file)
    try:
        size = path.stat().st_size
        source = path.open("rb")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    content_type = args.content_type or mimetypes.guess_type(path.name)[0]
    progress = Progress(f"put {args.object_key}", size, sys.stderr)
    with source:
        reply = client(args).upload(
            object_path(args.bucket, args.object_key),
            CountingReader(source, progress),
            size,
            content_type or "application/octet-stream",
        )
    progress.finish()
    info = expect(reply, 201)
    return emit(args, info, lambda i: [f"put {i['bucket']}/{i['key']} ({i['size']} bytes)"])


def cmd_get(args: argparse.Namespace) -> int:
    """Download an object to a file (or stdout), streamed."""
    session = client(args)
    shown: list[Progress] = []

    def started(size: int | None) -> Callable[[int], None]:
        shown.append(Progress(f"get {args.object_key}", size, sys.stderr))
        return shown[-1].advance

    path = object_path(args.bucket, args.object_key)
    if (args.file or STDOUT) == STDOUT:
        session.download(path, sys.stdout.buffer, started)
        sys.stdout.buffer.flush()
    else:
        written = download_file(session, path, Path(args.file), started)
    for progress in shown:
        progress.finish()
    if args.file and args.file != STDOUT:
        print(f"wrote {written} bytes to {args.file}", file=sys.stderr)
    return 0


def download_file(
    session: Client, path: str, target: Path, started: Callable[[int | None], Callable[[int], None]]
) -> int:
    """Into a temporary file beside `target`, renamed over it once whole: a failed
    download leaves no half file. Returns the bytes written."""
    temp = target.with_name(f".{target.name}.part")
    try:
        with temp.open("wb") as sink:
            written = session.download(path, sink, started)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return written


def cmd_remove(args: argparse.Namespace) -> int:
    """Delete an object."""
    answer = expect(client(args).call("DELETE", object_path(args.bucket, args.object_key)), 200)
    return emit(args, answer, lambda a: [f"deleted {a['bucket']}/{a['deleted']}"])


def add_commands(sub: Sub) -> None:
    """`buckets` and its sub-commands."""
    verbs = listing_command(
        sub,
        "buckets",
        cmd_list,
        "buckets: list, create, delete; objects, put, get, rm",
        ["nimbus buckets", "nimbus buckets put photos cat.jpg ./cat.jpg"],
        alias="bucket",
        what="buckets",
    )
    for name, handler, what in (
        ("create", cmd_create, "create a bucket"),
        ("delete", cmd_delete, "delete an empty bucket"),
    ):
        one = command(verbs, name, handler, what, [f"nimbus buckets {name} photos"])
        one.add_argument("bucket", metavar="BUCKET")
    objects = command(
        verbs,
        "objects",
        cmd_objects,
        "list a bucket's objects",
        ["nimbus buckets objects photos --prefix 2026/"],
    )
    objects.add_argument("bucket", metavar="BUCKET")
    objects.add_argument("--prefix")
    objects.add_argument("--limit", type=int)
    objects.add_argument("--start-after")
    put = command(
        verbs,
        "put",
        cmd_put,
        "upload a file as an object (streamed)",
        [
            "nimbus buckets put photos 2026/cat.jpg ./cat.jpg",
            "nimbus buckets put data report.csv report.csv --content-type text/csv",
        ],
    )
    put.add_argument("bucket", metavar="BUCKET")
    put.add_argument("object_key", metavar="KEY")
    put.add_argument("file", metavar="FILE")
    put.add_argument("--content-type", help="default: guessed from the file's name")
    get = command(
        verbs,
        "get",
        cmd_get,
        "download an object (streamed) to FILE or stdout",
        [
            "nimbus buckets get photos 2026/cat.jpg cat.jpg",
            "nimbus buckets get data report.csv | head",
        ],
    )
    get.add_argument("bucket", metavar="BUCKET")
    get.add_argument("object_key", metavar="KEY")
    get.add_argument(
        "file", metavar="FILE", nargs="?", help="where to write it (default, or -: stdout)"
    )
    rm = command(
        verbs, "rm", cmd_remove, "delete an object", ["nimbus buckets rm photos 2026/cat.jpg"]
    )
    rm.add_argument("bucket", metavar="BUCKET")
    rm.add_argument("object_key", metavar="KEY")
