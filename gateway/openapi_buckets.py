"""The bucket and object routes' entries in the OpenAPI route table (docs/buckets.md)."""

from __future__ import annotations

from gateway.openapi_model import LIST_LIMIT, Route, json_body
from gateway.openapi_types import BOOLEAN, STRING, array, nullable, obj, ref

BUCKET_ROUTES: dict[tuple[str, str], Route] = {
    ("PUT", "/v1/buckets/{bucket}"): Route(
        "Create a bucket (201), or confirm it exists (200)",
        ok={200: json_body(ref("Bucket")), 201: json_body(ref("Bucket"))},
    ),
    ("GET", "/v1/buckets"): Route(
        "The caller's buckets",
        ok={200: json_body(obj({"buckets": array(ref("Bucket"))}, required=("buckets",)))},
    ),
    ("DELETE", "/v1/buckets/{bucket}"): Route(
        "Delete an empty bucket",
        ok={200: json_body(obj({"deleted": STRING}, required=("deleted",)))},
        errors=(409,),
    ),
    ("GET", "/v1/buckets/{bucket}/objects"): Route(
        "A page of objects by key",
        ok={
            200: json_body(
                obj(
                    {
                        "bucket": STRING,
                        "prefix": STRING,
                        "objects": array(ref("ObjectInfo")),
                        "truncated": BOOLEAN,
                        "next_start_after": nullable(STRING),
                    },
                    required=("objects", "truncated"),
                )
            )
        },
        query={"prefix": STRING, "limit": LIST_LIMIT, "start_after": STRING},
    ),
    ("PUT", "/v1/buckets/{bucket}/objects/{key}"): Route(
        "Store the raw body under the key",
        ok={201: json_body(ref("ObjectInfo"))},
        body={"application/octet-stream": {"type": "string", "format": "binary"}},
        body_required=False,
    ),
    ("GET", "/v1/buckets/{bucket}/objects/{key}"): Route(
        "The object's bytes",
        ok={200: {"application/octet-stream": {"type": "string", "format": "binary"}}, 304: {}},
    ),
    ("DELETE", "/v1/buckets/{bucket}/objects/{key}"): Route(
        "Delete an object",
        ok={200: json_body(obj({"deleted": STRING, "bucket": STRING}, required=("deleted",)))},
    ),
}
