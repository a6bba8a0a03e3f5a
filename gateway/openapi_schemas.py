"""JSON Schemas (OpenAPI 3.1) of the API's bodies, built from the validators' own constants.

Request schemas take their field names, patterns and ranges from `gateway/schemas.py`,
`gateway/triggers.py` and `invoker/api.py`, so the document cannot drift from what the
handlers accept (tests/unit/test_openapi.py checks the field sets too). Response schemas
describe what the handlers send; they allow extra fields so that adding one is not a break.
"""

from __future__ import annotations

from gateway.auth import TENANT_NAME
from gateway.billing_query import GROUP_BY
from gateway.openapi_types import (
    ANY,
    BOOLEAN,
    INTEGER,
    NUMBER,
    STRING,
    Schema,
    array,
    nullable,
    number_range,
    obj,
    ref,
)
from gateway.schemas import (
    CODE_FIELDS,
    ENV_NAME,
    FUNCTION_FIELDS,
    FUNCTION_NAME,
    HANDLER,
    IMAGE_REF,
    MAX_ANNOTATIONS_BYTES,
    MAX_IMAGE_REF,
    MAX_PARAMS_BYTES,
    MAX_SEQUENCE_STEPS,
    NODE_FIELDS,
    SEQUENCE_FIELDS,
    SEQUENCE_RUNTIME,
    TENANT_FIELDS,
)
from gateway.triggers import BUCKET_EVENTS, FIELDS, TRIGGER_NAME, TYPES
from invoker.api import (
    CONCURRENCY_RANGE,
    IMAGE_PROTOCOLS,
    IMAGE_RUNTIME,
    MEMORY_MB_RANGE,
    RUNTIMES,
    TIMEOUT_S_RANGE,
    Status,
)
from invoker.store.functions import REDACTED
from invoker.tenant_limits import LIMIT_FIELDS

# --- path parameters ---------------------------------------------------------------------

FUNCTION_NAME_SCHEMA: Schema = {"type": "string", "pattern": FUNCTION_NAME.pattern}
TRIGGER_NAME_SCHEMA: Schema = {"type": "string", "pattern": TRIGGER_NAME.pattern}
TENANT_NAME_SCHEMA: Schema = {"type": "string", "pattern": TENANT_NAME.pattern}
BUCKET_NAME_SCHEMA: Schema = {"type": "string", "minLength": 3, "maxLength": 63}

# --- request bodies ----------------------------------------------------------------------

_CALL_OPTIONS: dict[str, Schema] = {
    "params": {
        "type": "object",
        "description": f"default parameters, merged under every call's event (at most "
        f"{MAX_PARAMS_BYTES} bytes as JSON; no `__ow_` names)",
    },
    "secret_params": {
        "type": "array",
        "items": STRING,
        "description": f"keys of params shown as {REDACTED!r}, never in clear",
    },
    "web": {
        "type": "boolean",
        "default": False,
        "description": "answer on /web/{tenant}/{name} without an API key",
    },
    "web_raw": {
        "type": "boolean",
        "default": False,
        "description": "web calls get the raw query and body (OpenWhisk's raw-http)",
    },
    "web_secret": {
        **nullable({"type": "string", "minLength": 1, "maxLength": 256}),
        "description": "web calls must send it in X-Require-Whisk-Auth (never returned)",
    },
    "annotations": {
        "type": "object",
        "description": f"opaque to Nimbus, returned as given (at most {MAX_ANNOTATIONS_BYTES} "
        "bytes as JSON)",
    },
}

_CODE_SOURCE = obj(
    {"source": {"type": "string", "minLength": 1}}, required=("source",), closed=True
)
_CODE_ZIP = obj(
    {"zip": {"type": "string", "contentEncoding": "base64"}}, required=("zip",), closed=True
)

FUNCTION_PUT = obj(
    {
        "runtime": {"type": "string", "enum": sorted(RUNTIMES), "default": "python:3.11"},
        "handler": {
            "type": "string",
            "pattern": HANDLER.pattern,
            "description": "default: the runtime's (GET /v1/runtimes)",
        },
        "code": {"oneOf": [_CODE_SOURCE, _CODE_ZIP]},
        "memory_mb": {**number_range("integer", MEMORY_MB_RANGE), "default": 128},
        "timeout_s": {**number_range("number", TIMEOUT_S_RANGE), "default": 30},
        "concurrency": {**number_range("integer", CONCURRENCY_RANGE), "default": 1},
        "env": {
            "type": "object",
            "propertyNames": {"pattern": ENV_NAME.pattern, "not": {"pattern": "^NIMBUS_"}},
            "additionalProperties": STRING,
        },
        "network": {"type": "boolean", "default": False},
        **_CALL_OPTIONS,
        "sequence": {
            "type": "array",
            "items": FUNCTION_NAME_SCHEMA,
            "minItems": 1,
            "maxItems": MAX_SEQUENCE_STEPS,
            "description": "run these functions of the caller's tenant one after another "
            "instead of code: each step's result is the next step's input",
        },
        "image": {
            "type": "string",
            "pattern": IMAGE_REF.pattern,
            "maxLength": MAX_IMAGE_REF,
            "description": "run this image of the local engine instead of code (it must be "
            "there: `docker build`, `docker load` or `nimbus images import`); see "
            "docs/runtimes.md, 'Your own image'",
        },
        "image_protocol": {
            "type": "string",
            "enum": list(IMAGE_PROTOCOLS),
            "description": "nimbus: the image answers /init and /run itself; http: a plain "
            "HTTP server on $PORT answering POST / with the event. Default: nimbus when the "
            "image has the io.nimbus.runtime label (built FROM a Nimbus runtime image), "
            "else http",
        },
    },
    closed=True,
)
# Code, an image, or a sequence (which takes no runtime, handler, code or sizing of its own).
FUNCTION_PUT["oneOf"] = [
    {"required": ["code"], "not": {"anyOf": [{"required": ["sequence"]}, {"required": ["image"]}]}},
    {
        "required": ["image"],
        "not": {"anyOf": [{"required": ["sequence"]}, {"required": ["code"]}]},
    },
    {
        "required": ["sequence"],
        "propertyNames": {"enum": sorted(SEQUENCE_FIELDS)},
    },
]
FUNCTION_PUT["examples"] = [
    {
        "runtime": "python:3.11",
        "handler": "main.handler",
        "code": {"source": "def handler(event):\n    return event\n"},
    }
]

TENANT_CREATE = obj({"name": TENANT_NAME_SCHEMA}, required=("name",), closed=True)
TENANT_CREATE["examples"] = [{"name": "team-a"}]
_LIMIT_NUMBER = {"type": "number", "exclusiveMinimum": 0, "maximum": 1_000_000}
_LIMIT_INTEGER = {"type": "integer", "minimum": 1, "maximum": 1_000_000}
TENANT_LIMITS_PUT = obj(
    {f: nullable(_LIMIT_NUMBER if f == "rate_per_s" else _LIMIT_INTEGER) for f in LIMIT_FIELDS},
    closed=True,
)
NODE_CREATE = obj({"flavor": STRING}, required=("flavor",), closed=True)
NODE_CREATE["examples"] = [{"flavor": "small"}]

_TRIGGER_PROPERTIES: dict[str, Schema] = {
    "webhook": BOOLEAN,
    "rotate_webhook": BOOLEAN,
    "cron": STRING,
    "timezone": {"type": "string", "default": "UTC"},
    "payload": {"type": "object"},
    "bucket": {"type": "string", "minLength": 1},
    "events": {
        "type": "array",
        "items": {"type": "string", "enum": list(BUCKET_EVENTS)},
        "minItems": 1,
    },
    "prefix": STRING,
    "suffix": STRING,
}
_TRIGGER_REQUIRED = {"http": (), "schedule": ("cron",), "bucket": ("bucket",)}


def _trigger_variant(kind: str) -> Schema:
    fields = sorted(FIELDS[kind] - {"type"})
    properties = {"type": {"const": kind}, **{f: _TRIGGER_PROPERTIES[f] for f in fields}}
    return obj(properties, required=("type", *_TRIGGER_REQUIRED[kind]), closed=True)


TRIGGER_PUT: Schema = {"oneOf": [_trigger_variant(kind) for kind in TYPES]}
TRIGGER_PUT["examples"] = [{"type": "http"}, {"type": "schedule", "cron": "*/5 * * * *"}]
RULE_FIELDS = ("trigger", "function", "enabled")
RULE_PUT = obj(
    {"trigger": TRIGGER_NAME_SCHEMA, "function": FUNCTION_NAME_SCHEMA, "enabled": BOOLEAN},
    required=("trigger", "function"),
    closed=True,
)
EVENT: Schema = {"type": "object", "description": "any JSON object; the function's event"}

# --- responses ---------------------------------------------------------------------------

ERROR = obj(
    {
        "error": obj(
            {
                "message": STRING,
                "field": STRING,
                "type": STRING,
                "activation_id": STRING,
            },
            required=("message",),
        )
    },
    required=("error",),
)

FUNCTION = obj(
    {
        "name": STRING,
        "version": INTEGER,
        "runtime": STRING,
        "handler": STRING,
        "code_sha256": STRING,
        "code_kind": {
            "type": "string",
            "enum": ["source", "zip", SEQUENCE_RUNTIME, IMAGE_RUNTIME],
        },
        "code_size": INTEGER,
        "memory_mb": INTEGER,
        "timeout_s": NUMBER,
        "concurrency": INTEGER,
        "env": {"type": "object", "additionalProperties": STRING},
        "network": BOOLEAN,
        "params": {"type": "object", "description": f"secret values shown as {REDACTED!r}"},
        "secret_params": array(STRING),
        "web": BOOLEAN,
        "web_raw": BOOLEAN,
        "web_secret": {"type": "boolean", "description": "whether web calls need a secret"},
        "sequence": nullable(array(STRING)),
        "annotations": {"type": "object"},
        "image": nullable(STRING),
        "image_protocol": nullable({"type": "string", "enum": list(IMAGE_PROTOCOLS)}),
        "created": NUMBER,
        "updated": NUMBER,
    },
    required=("name", "version", "runtime", "handler", "code_sha256", "memory_mb"),
)

ACTIVATION = obj(
    {
        "activation_id": STRING,
        "function": STRING,
        "version": INTEGER,
        "status": {"type": "string", "enum": [s.value for s in Status]},
        "result": ANY,
        "error": nullable(STRING),
        "logs": array(STRING),
        "start": nullable(NUMBER),
        "end": nullable(NUMBER),
        "duration_ms": nullable(NUMBER),
        "init_ms": nullable(NUMBER),
        "wait_ms": nullable(NUMBER),
        "cold_start": nullable(BOOLEAN),
        "memory_mb": INTEGER,
        "node": nullable(STRING),
        "trigger": nullable(STRING),
        "peak_memory_mb": nullable(NUMBER),
        "cpu_seconds": nullable(NUMBER),
        "attempts": INTEGER,
        "dead_letter": BOOLEAN,
    },
    required=("activation_id", "function", "status"),
)

TRIGGER = obj(
    {
        "name": STRING,
        "type": {"type": "string", "enum": list(TYPES)},
        "webhook": BOOLEAN,
        "webhook_url": STRING,
        "last_fire": nullable(NUMBER),
        "created": NUMBER,
        "updated": NUMBER,
    },
    required=("name", "type", "webhook"),
)
RULE = obj(
    {
        "name": STRING,
        "trigger": STRING,
        "function": STRING,
        "enabled": BOOLEAN,
        "created": NUMBER,
        "updated": NUMBER,
    },
    required=("name", "trigger", "function", "enabled"),
)

_MONEY = {"type": "string", "description": "a decimal, exact"}
REPORT_LINE = obj(
    {
        "key": STRING,
        "invocations": INTEGER,
        "billed_gb_seconds": _MONEY,
        "free_requests": INTEGER,
        "free_gb_seconds": _MONEY,
        "request_cost": _MONEY,
        "compute_cost": _MONEY,
        "total": _MONEY,
    },
    required=("key", "invocations", "total"),
)
REPORT = obj(
    {
        "tenant": STRING,
        "group_by": {"type": "string", "enum": list(GROUP_BY)},
        "from": STRING,
        "to": STRING,
        "currency": STRING,
        "lines": array(ref("ReportLine")),
        "total": ref("ReportLine"),
    },
    required=("tenant", "group_by", "from", "to", "lines", "total"),
)

NODE = obj(
    {
        "id": STRING,
        "flavor": STRING,
        "state": STRING,
        "price_per_hour": NUMBER,
        "capacity": {"type": "object"},
        "allocated": {"type": "object"},
        "utilisation": {"type": "object"},
        "containers": array(STRING),
    },
    required=("id", "flavor", "state"),
)

BUCKET = obj({"name": STRING, "created": NUMBER}, required=("name",))
OBJECT_INFO = obj(
    {
        "bucket": STRING,
        "key": STRING,
        "size": INTEGER,
        "content_type": STRING,
        "etag": STRING,
        "created": NUMBER,
        "updated": NUMBER,
    },
    required=("bucket", "key", "size", "etag"),
)

COMPONENTS: dict[str, Schema] = {
    "Error": ERROR,
    "Function": FUNCTION,
    "Activation": ACTIVATION,
    "Trigger": TRIGGER,
    "Rule": RULE,
    "ReportLine": REPORT_LINE,
    "Report": REPORT,
    "Node": NODE,
    "Bucket": BUCKET,
    "ObjectInfo": OBJECT_INFO,
}

# Request-body field sets the handlers enforce, by the schema that documents them: the
# OpenAPI test compares each schema's properties with these.
VALIDATED_FIELDS: dict[str, frozenset[str]] = {
    "FunctionPut": FUNCTION_FIELDS,
    "FunctionPut.code": CODE_FIELDS,
    "TenantCreate": TENANT_FIELDS,
    "NodeCreate": NODE_FIELDS,
    "TenantLimitsPut": frozenset(LIMIT_FIELDS),
    "RulePut": frozenset(RULE_FIELDS),
    **{f"TriggerPut.{kind}": frozenset(FIELDS[kind]) for kind in TYPES},
}
