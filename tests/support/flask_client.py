"""Flask's test client, with every response read and closed before the test sees it."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient


class BufferedClient(FlaskClient):
    """A streamed response (``send_file`` of a blob, a static file) holds its file open until
    someone closes the response; a test that only reads ``resp.data`` never does, and the
    garbage collector's close is a ResourceWarning. ``buffered=True`` reads the body at once
    and closes the response, as a WSGI server does."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)
