"""Buckets and objects over HTTP; the object store itself is `invoker.objects`."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from gateway.config import Config
from gateway.errors import ApiError, bad_request, not_found
from gateway.middleware import caller
from invoker.objects.model import EventSink, chunks
from invoker.objects.names import (
    BucketError,
    BucketNotEmpty,
    InvalidInput,
    NoSuchBucket,
    check_bucket_name,
    check_key,
)
from invoker.objects.opening import open_objects
from invoker.objects.service import ObjectStore

BUCKETS = web.AppKey("buckets", ObjectStore)

routes = web.RouteTableDef()

DEFAULT_LIST_LIMIT = 1000
READ_CHUNK = 256 * 1024

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _api_errors(handler: Route) -> Route:
    """The store's refusals as API errors: 400 naming the field, 404, 409."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except InvalidInput as exc:
            raise bad_request(str(exc), exc.field) from None
        except NoSuchBucket as exc:
            raise not_found(f"bucket {exc.bucket!r}") from None
        except BucketNotEmpty as exc:
            raise ApiError(409, str(exc)) from None
        except BucketError as exc:
            raise ApiError(400, str(exc)) from None

    return wrapped


def _names(request: web.Request) -> tuple[str, str]:
    return (
        check_bucket_name(request.match_info["bucket"]),
        check_key(request.match_info["key"]),
    )


async def _bounded_body(request: web.Request, limit: int) -> bytes:
    """The raw body, refusing (400, field body) as soon as it passes `limit` bytes."""
    too_large = InvalidInput(f"the object is over the {limit} byte limit", "body")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names this ETag (weak or strong) or is `*`."""
    if if_none_match is None:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


@routes.put("/v1/buckets/{bucket}")
@_api_errors
async def put_bucket(request: web.Request) -> web.StreamResponse:
    """Create a bucket (201), or confirm it exists (200)."""
    who = caller(request)
    name = check_bucket_name(request.match_info["bucket"])
    created = await request.app[BUCKETS].create_bucket(who.tenant, name)
    return web.json_response({"name": name}, status=201 if created else 200)


@routes.get("/v1/buckets")
@_api_errors
async def list_buckets(request: web.Request) -> web.StreamResponse:
    """The caller's buckets, by name."""
    who = caller(request)
    found = await request.app[BUCKETS].list_buckets(who.tenant)
    return web.json_response({"buckets": [b.to_json() for b in found]})


@routes.delete("/v1/buckets/{bucket}")
@_api_errors
async def delete_bucket(request: web.Request) -> web.StreamResponse:
    """Delete an empty bucket; 409 while it holds objects."""
    who = caller(request)
    name = check_bucket_name(request.match_info["bucket"])
    if not await request.app[BUCKETS].delete_bucket(who.tenant, name):
        raise NoSuchBucket(name)
    return web.json_response({"deleted": name})


@routes.get("/v1/buckets/{bucket}/objects")
@_api_errors
async def list_objects(request: web.Request) -> web.StreamResponse:
    """A page of objects by key, filtered by `prefix`, after `start_after`."""
    who = caller(request)
    bucket = check_bucket_name(request.match_info["bucket"])
    query = request.rel_url.query
    raw_limit = query.get("limit", str(DEFAULT_LIST_LIMIT))
    try:
        limit = int(raw_limit)
    except ValueError:
        raise InvalidInput(f"limit must be an integer, got {raw_limit!r}", "limit") from None
    prefix = query.get("prefix", "")
    page = await request.app[BUCKETS].list_objects(
        who.tenant, bucket, prefix=prefix, limit=limit, start_after=query.get("start_after", "")
    )
    return web.json_response(
        {
            "bucket": bucket,
            "prefix": prefix,
            "objects": [o.to_json() for o in page.objects],
            "truncated": page.truncated,
            "next_start_after": page.next_start_after,
        }
    )


@routes.put("/v1/buckets/{bucket}/objects/{key:.+}")
@_api_errors
async def put_object(request: web.Request) -> web.StreamResponse:
    """Store the raw body under the key with its Content-Type; 201 with the object's info."""
    who = caller(request)
    bucket, key = _names(request)
    store = request.app[BUCKETS]
    data = await _bounded_body(request, store.max_object_bytes)
    info = await store.put_object(
        who.tenant, bucket, key, data, request.headers.get("Content-Type")
    )
    return web.json_response(info.to_json(), status=201)


@routes.get("/v1/buckets/{bucket}/objects/{key:.+}")
@_api_errors
async def get_object(request: web.Request) -> web.StreamResponse:
    """The object's bytes with its Content-Type and ETag (HEAD: the headers alone)."""
    who = caller(request)
    bucket, key = _names(request)
    store = request.app[BUCKETS]
    opened = await store.open_object(who.tenant, bucket, key)
    if opened is None:
        raise not_found(f"object {key!r} in bucket {bucket!r}")
    info, source = opened
    try:
        etag = f'"{info.etag}"'
        headers = {"Content-Type": info.content_type, "ETag": etag}
        if _matches(request.headers.get("If-None-Match"), etag):
            return web.Response(status=304, headers={"ETag": etag})
        response = web.StreamResponse(headers=headers)
        response.content_length = info.size
        response.last_modified = info.updated
        await response.prepare(request)
        if request.method != "HEAD":
            async for chunk in chunks(source, READ_CHUNK):
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        await source.close()


@routes.delete("/v1/buckets/{bucket}/objects/{key:.+}")
@_api_errors
async def delete_object(request: web.Request) -> web.StreamResponse:
    """Delete an object: 200, or 404 when there is none."""
    who = caller(request)
    bucket, key = _names(request)
    if not await request.app[BUCKETS].delete_object(who.tenant, bucket, key):
        raise not_found(f"object {key!r} in bucket {bucket!r}")
    return web.json_response({"deleted": key, "bucket": bucket})


def setup(app: web.Application, config: Config, on_event: EventSink) -> None:
    """Serve the bucket routes from the object store of the configured store, open while
    the app runs. Call it after the main store's cleanup context is added: a new SQLite
    store file gets the main store's settings first."""
    objects = open_objects(
        config.store_url,
        config.data_dir,
        max_object_bytes=config.max_object_bytes,
        on_event=on_event,
    )
    app[BUCKETS] = objects

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        await objects.open()
        try:
            yield
        finally:
            await objects.close()

    app.cleanup_ctx.append(lifetime)
    app.add_routes(routes)
