"""Deleting a tenant with everything it owns, across the store, the object store and the pool.

Order matters:

1. what keep-alive learned of its functions is forgotten first (a periodic save would
   otherwise write it back, as in `DELETE /v1/functions/{name}`);
2. the store deletes the tenant, its keys and every row it owns in one transaction: from
   then on no key of it authenticates (this gateway's caches are dropped at once; other
   gateways' within `KEY_CACHE_TTL_S`), and its activation tokens stop working too;
3. its buckets and objects go through the object store's own deletion API;
4. its containers are retired: idle ones now, busy ones when their calls end.

Metering records are kept for the provider's books (see `Store.delete_tenant`).

A call that was running during the deletion may still record its activation; a bucket
could survive a crash between steps 2 and 3. Neither is ever seen: creating a tenant of the
same name purges both first (`purge_leftovers`).
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from gateway.keys import PLATFORM
from gateway.routes.buckets import BUCKETS
from invoker.objects.names import MAX_LIST_LIMIT, BucketNotEmpty, NoSuchBucket
from invoker.objects.service import ObjectStore

log = logging.getLogger("nimbus.gateway")


async def delete_buckets(buckets: ObjectStore, tenant: str) -> int:
    """Delete every object and bucket of the tenant; returns how many objects went."""
    removed = 0
    for bucket in await buckets.list_buckets(tenant):
        try:
            while True:
                page = await buckets.list_objects(tenant, bucket.name, limit=MAX_LIST_LIMIT)
                for found in page.objects:
                    removed += await buckets.delete_object(tenant, bucket.name, found.key)
                if not page.truncated:
                    break
            await buckets.delete_bucket(tenant, bucket.name)
        except (NoSuchBucket, BucketNotEmpty):  # changed under us: the next purge finishes it
            log.warning("bucket %s of deleted tenant %s changed while deleted", bucket.name, tenant)
    return removed


async def delete_tenant(app: web.Application, name: str) -> bool:
    """Delete the tenant and all it owns; False when there is no such tenant."""
    platform = app[PLATFORM]
    if not await platform.store.tenant_exists(name):
        return False
    stored = {f.spec.name for f in await platform.store.list_functions(name)}
    functions = await platform.ops.forget_tenant(name, stored)
    deleted = await platform.store.delete_tenant(name, time.time())
    if deleted is None:  # deleted meanwhile by another request
        return False
    platform.forget_tenant(name, deleted)
    objects = await delete_buckets(app[BUCKETS], name)
    await platform.ops.retire(name, functions | set(deleted.functions))
    log.info("deleted tenant %s (%d functions, %d objects)", name, len(stored), objects)
    return True


async def purge_leftovers(app: web.Application, name: str) -> None:
    """Before a new tenant's key is handed out: no bucket of a deleted namesake survives."""
    await delete_buckets(app[BUCKETS], name)
