"""The web console: static files the gateway serves at `/console` (see docs/console.md).

`assets` is the pure part (which files exist, their types, validators and headers);
`routes` serves them. The console's data comes from the HTTP API with the user's key.
"""
