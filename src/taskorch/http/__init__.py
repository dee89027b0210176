"""The HTTP face: a REST API under ``/api/v1``, server-sent events, Prometheus ``/metrics`` and the
web dashboard, served by ``taskorch serve``. Like every face it calls only the engine."""

from taskorch.http.app import create_app

__all__ = ["create_app"]
