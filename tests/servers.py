"""Loopback servers that tests start themselves: moto's S3 server and Azurite (and helpers).

Imported by the conftests that need object storage; nothing here runs unless a
test asks for a server. Every server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import ctypes
import email.utils
import functools
import hashlib
import hmac
import logging
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

__all__ = [
    "AZURITE_ACCOUNT",
    "AZURITE_KEY",
    "S3_CREDENTIALS",
    "Azurite",
    "MotoS3",
    "ServerUnavailable",
    "install_azurite",
    "speed_up_moto",
]

#: moto accepts any credentials; these make obstore sign its requests.
S3_CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing-secret", "region": "us-east-1"}


def speed_up_moto() -> None:
    """Cache the list of moto's service modules, which its server reads from disk on every request.

    moto's dispatcher calls ``moto.backends.list_of_moto_modules()`` for each
    request, and that lists moto's package folder and stats each of its ~180
    entries: about a quarter of the server's time per request here. The list
    cannot change while the process runs, so a tuple of it answers the same.
    """
    from moto import backends

    if not isinstance(backends.list_of_moto_modules, functools.partial):
        modules = tuple(backends.list_of_moto_modules())
        backends.list_of_moto_modules = functools.partial(tuple, modules)  # type: ignore[assignment]


#: What the child process of ``MotoS3(process=True)`` runs: moto's server, sped up.
_MOTO_PROCESS = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
import logging
from servers import speed_up_moto
logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
speed_up_moto()
from moto.server import main
main(sys.argv[1:])
"""


class MotoS3:
    """moto's S3 server on 127.0.0.1, with a fresh bucket per call of :meth:`bucket`.

    By default the server is a thread of the test process. With ``process=True`` it
    is a child process (moto's ``moto.server.main``): moto is pure Python, so in a
    thread it shares the test's GIL; in a process of its own it serves requests
    while the test's side runs on another core. Either way :func:`speed_up_moto`
    applies.

    >>> server = MotoS3()                                # doctest: +SKIP
    >>> store = aiostore.ObjectStore(server.url(server.bucket()), **server.options())  # doctest: +SKIP
    """

    def __init__(self, *, process: bool = False) -> None:
        self._server: Any = None
        self._process: subprocess.Popen[bytes] | None = None
        if process:
            self._start_process()
        else:
            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
            speed_up_moto()
            self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            self._server.start()
            self.port: int = self._server._server.server_address[1]  # moto has no public accessor
            self.endpoint = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()

    def _start_process(self, timeout: float = 30.0) -> None:
        for attempt in range(3):  # the free port may be taken before moto binds it
            self.port = free_port()
            self.endpoint = f"http://127.0.0.1:{self.port}"
            command = [sys.executable, "-c", _MOTO_PROCESS, "-H", "127.0.0.1", "-p", str(self.port)]
            self._process = _popen(command, subprocess.DEVNULL)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self._process.poll() is None:
                try:
                    with urllib.request.urlopen(f"{self.endpoint}/moto-api/data.json", timeout=2):
                        return
                except urllib.error.HTTPError:
                    return
                except OSError:
                    time.sleep(0.1)
            self.stop()
            if attempt == 2:
                raise RuntimeError(f"moto's server (a child process) did not answer on {self.endpoint}")

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
        if self._server is not None:
            self._server.stop()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


# -- Azure Blob: Azurite, from the npm registry ------------------------------------------------------------

#: Azurite's well-known development account (public, in Microsoft's documentation).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#: The npm package the tests install; a major version, so a cached install is reused.
AZURITE_PACKAGE = "azurite@3"


class ServerUnavailable(RuntimeError):
    """A server cannot run on this machine (a tool is missing, an install failed): skip, saying why."""


def install_azurite(cache: Path) -> Path:
    """The ``azurite-blob`` executable, installed with npm into ``cache`` unless it is there already.

    npm installs into a temporary folder beside ``cache`` that is then renamed,
    so concurrent test runs never see (or reuse) half an install.
    """
    executable = cache / "node_modules" / ".bin" / "azurite-blob"
    if executable.exists():
        return executable
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        raise ServerUnavailable(
            f"Azurite (the Azure Blob emulator) needs Node.js: {' and '.join(missing)} not found on PATH"
        )
    cache.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{cache.name}.installing-", dir=cache.parent))
    try:
        command = ["npm", "install", "--prefix", str(staging), AZURITE_PACKAGE, "--no-audit", "--no-fund"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-5:])
            raise ServerUnavailable(f"`{' '.join(command)}` failed ({result.returncode}):\n{tail}")
        try:
            staging.rename(cache)
        except OSError:  # another run finished first: use its install
            if not executable.exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return executable


def _prctl() -> Any:
    """libc's ``prctl``, looked up in the parent (the child, between fork and exec, only calls it)."""
    if sys.platform != "linux":
        return None
    try:
        return ctypes.CDLL(None).prctl
    except (AttributeError, OSError):
        return None


_PRCTL = _prctl()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, between fork and exec
    """The server gets SIGTERM if the test process dies without stopping it (a kill -9, a crash)."""
    _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _popen(command: list[str], output: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent if _PRCTL is not None else None,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Azurite:
    """Azurite's Blob service on 127.0.0.1, in memory, with a fresh container per call of :meth:`container`.

    >>> server = Azurite(install_azurite(Path(".nox/azurite")))   # doctest: +SKIP
    >>> store = aiostore.ObjectStore(server.url(server.container()), **server.options())  # doctest: +SKIP
    """

    def __init__(self, executable: Path, *, startup_timeout: float = 30.0) -> None:
        self.executable = executable
        for attempt in range(3):  # the free port may be taken before Azurite binds it
            self.port = free_port()
            self.endpoint = f"http://127.0.0.1:{self.port}"
            self._log = tempfile.TemporaryFile()
            command = [
                str(executable),
                "--silent",
                "--inMemoryPersistence",
                "--disableTelemetry",  # otherwise it reaches out to an outside host
                "--skipApiVersionCheck",  # otherwise current clients are refused
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.port),
            ]
            self._process = _popen(command, self._log)
            try:
                self._wait_until_up(startup_timeout)
                return
            except RuntimeError:
                self.stop()
                if attempt == 2:
                    raise

    def _wait_until_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Azurite exited with {self._process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/{AZURITE_ACCOUNT}?comp=list", timeout=2):
                    return
            except urllib.error.HTTPError:  # 403 for an unsigned request: it is up
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"Azurite did not answer on {self.endpoint} within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    def _signed(self, method: str, path: str, query: dict[str, str]) -> urllib.request.Request:
        """A request signed with the development account's Shared Key (no Azure SDK needed)."""
        headers = {"x-ms-date": email.utils.formatdate(usegmt=True), "x-ms-version": "2021-08-06"}
        canonical_headers = "".join(f"{name}:{value}\n" for name, value in sorted(headers.items()))
        resource = f"/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{path}"
        resource += "".join(f"\n{name}:{value}" for name, value in sorted(query.items()))
        # VERB, then 11 empty standard headers (no body: Content-Length is empty), then the rest.
        to_sign = f"{method}\n" + "\n" * 11 + canonical_headers + resource
        key = base64.b64decode(AZURITE_KEY)
        signature = base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha256).digest()).decode()
        headers["Authorization"] = f"SharedKey {AZURITE_ACCOUNT}:{signature}"
        url = f"{self.endpoint}/{AZURITE_ACCOUNT}/{path}?{urllib.parse.urlencode(query)}"
        return urllib.request.Request(url, method=method, headers=headers)

    def container(self) -> str:
        """Create a new, empty container and return its name (obstore cannot create one)."""
        name = f"test-{uuid.uuid4().hex[:12]}"
        with urllib.request.urlopen(self._signed("PUT", name, {"restype": "container"}), timeout=10) as r:
            r.read()
        return name

    @staticmethod
    def url(container: str, prefix: str = "") -> str:
        return f"az://{container}/{prefix}" if prefix else f"az://{container}"

    def options(self, **client_options: Any) -> dict[str, Any]:
        """Keyword arguments of :class:`aiostore.ObjectStore` for this server.

        obstore's ``use_emulator`` ignores ``endpoint`` (it reads the port from
        ``$AZURITE_BLOB_STORAGE_URL``, default 10000), so the account, its key and
        the endpoint are given as for any Azure-compatible service.
        """
        return {
            "config": {
                "account_name": AZURITE_ACCOUNT,
                "account_key": AZURITE_KEY,
                "endpoint": f"{self.endpoint}/{AZURITE_ACCOUNT}",
            },
            "client_options": {"allow_http": True, **client_options},
        }

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()
