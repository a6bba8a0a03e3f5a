"""Clients of the OpenWhisk API for tests: the official npm client (`client.js`) and a
curl-like one over aiohttp (`ow.py`)."""
