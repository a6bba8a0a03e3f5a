"""An OpenWhisk-compatible REST API at `/api/v1`, a facade over the same platform.

One store, one invoker, one tenant model: a namespace is a tenant, an action a function,
an activation an activation, triggers and rules the native ones. `docs/openwhisk.md`
says what is supported, what differs and what is not.
"""
