"""Loopback servers that tests start themselves: moto's S3 server (and helpers).

Imported by the conftests that need object storage; nothing here runs unless a
test asks for a server. Every server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import logging
import threading
import urllib.request
import uuid
from typing import Any

__all__ = ["MotoS3", "S3_CREDENTIALS"]

#: moto accepts any credentials; these make obstore sign its requests.
S3_CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing-secret", "region": "us-east-1"}


class MotoS3:
    """moto's S3 server in a thread on 127.0.0.1, with a fresh bucket per call of :meth:`bucket`.

    >>> server = MotoS3()                                # doctest: +SKIP
    >>> store = aiostore.ObjectStore(server.url(server.bucket()), **server.options())  # doctest: +SKIP
    """

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        self.port: int = self._server._server.server_address[1]  # moto has no public accessor
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()

    def bucket(self) -> str:
        """Create a new, empty bucket and return its name."""
        name = f"test-{uuid.uuid4().hex[:12]}"
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
        return name

    @staticmethod
    def url(bucket: str, prefix: str = "") -> str:
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"

    def options(self, **client_options: Any) -> dict[str, Any]:
        """Keyword arguments of :class:`aiostore.ObjectStore` for this server."""
        return {
            "config": {"endpoint": self.endpoint, **S3_CREDENTIALS},
            "client_options": {"allow_http": True, **client_options},
        }

    def stop(self) -> None:
        self._server.stop()
