"""The HTTP service: the WSGI application (`app`), its schemas and problems, and the
server that runs it (`server`)."""

from scripts.service.app import MAX_BODY, close_app, create_app, wsgi

__all__ = ["MAX_BODY", "close_app", "create_app", "wsgi"]
