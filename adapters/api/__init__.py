"""The HTTP edge of `server.py`: body parsing, response shaping, streaming and serving state.

`adapters/http.py` is the providers' HTTP *client* side; this package is the
gateway's *server* side, kept out of `server.py` so that file stays routing.
"""
