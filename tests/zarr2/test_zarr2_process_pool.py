"""zarr 2's classic scale-out on one machine: the parent creates an array on S3
(moto) through ``aiostore.sync.ObjectStore``, then a ``multiprocessing`` pool fills
it, each worker process writing its own chunks through its copy of the store.

Each run happens in a fresh Python (a script in a subprocess), so a hang cannot
take the test session with it, and no thread of pytest's process (moto's server,
for one) is forked. The pool's result is waited for with a timeout.

With the ``spawn`` start method the store reaches the workers pickled. With
``fork`` (Linux's default before Python 3.14) the children inherit the parent's
store, whose obstore client the parent has already used: obstore's tokio runtime
does not survive ``fork`` (its threads are gone in the child), and the child's
first request hangs forever, whatever ``timeout`` the store was given.
``ObjectStore``'s docstring promises that "in a forked child, [it] rebuilds its
client", but rebuilding the client does not bring the runtime back: that test is
an expected failure until aiostore makes the fork case work or refuses it with a
clear error instead of hanging.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pathlib
import subprocess
import sys
from typing import Any

import pytest

import aiostore

#: Seconds each pool may take: forked workers start at once, spawned ones import
#: zarr first; a healthy run on moto takes about a second either way.
POOL_TIMEOUT = {"fork": 5, "spawn": 30}
REPO = pathlib.Path(aiostore.__file__).resolve().parents[1]

SCRIPT = """
import json, multiprocessing, sys
import numpy as np
import zarr
import aiostore.sync

url, options, method, timeout = json.loads(sys.argv[1])
store = aiostore.sync.ObjectStore(url, **options)


def fill(i):
    z = zarr.open_array(store, mode="r+")
    z[i * 10 : (i + 1) * 10] = i
    return i


if __name__ == "__main__":
    # the parent uses the store before the pool starts
    zarr.create(shape=(40,), chunks=(10,), dtype="i4", store=store, fill_value=-1)
    pool = multiprocessing.get_context(method).Pool(2)
    try:
        done = pool.map_async(fill, range(4)).get(timeout=timeout)
    except multiprocessing.TimeoutError:
        pool.terminate()
        sys.exit(f"the {method} pool's workers hung: nothing came back within {timeout} s")
    pool.close()
    pool.join()
    assert done == [0, 1, 2, 3], done
    back = zarr.open_array(aiostore.sync.ObjectStore(url, **options), mode="r")[:]
    assert (back == np.repeat(np.arange(4), 10)).all(), back
    print("ok")
"""


def run_pool(tmp_path: pathlib.Path, moto_s3: Any, method: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "pool.py"
    script.write_text(SCRIPT)
    args = json.dumps(
        [moto_s3.url(moto_s3.bucket(), "pool.zarr"), moto_s3.options(), method, POOL_TIMEOUT[method]]
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, str(script), args],
        capture_output=True,
        text=True,
        timeout=POOL_TIMEOUT[method] + 60,
        env=env,
        cwd=tmp_path,
    )


def test_spawned_pool_writes_through_pickled_stores(tmp_path: pathlib.Path, moto_s3: Any) -> None:
    result = run_pool(tmp_path, moto_s3, "spawn")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_a_forked_pool_gets_a_clear_error_not_a_hang(tmp_path: pathlib.Path, moto_s3: Any) -> None:
    # obstore's runtime does not survive fork once the parent has used it (a request in
    # the child would block forever): the store says so at once, naming the way out.
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("this platform has no fork start method")
    result = run_pool(tmp_path, moto_s3, "fork")
    assert result.returncode != 0 and "hung" not in result.stderr, result.stderr[-3000:]
    assert "RuntimeError" in result.stderr and "'spawn' or 'forkserver'" in result.stderr, result.stderr[
        -3000:
    ]
