"""xarray's to_zarr / open_zarr (on zarr 3) round-trip a dataset through ZarrStore,
over the directory, LMDB and S3 (ObjectStore on moto) backends -- eagerly, and
with dask writing chunks from several threads at once."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from aiostore.abc import Store
from aiostore.zarr3 import ZarrStore

pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part:UserWarning")


@pytest.fixture(params=["directory", "lmdb", "objectstore"])
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_dataset() -> xr.Dataset:
    rng = np.random.default_rng(0)
    times = pd.date_range("2024-01-01", periods=24, freq="h")
    return xr.Dataset(
        {
            "temperature": (("time", "x", "y"), rng.normal(size=(24, 8, 6)).astype("float32")),
            "flag": (("x",), np.arange(8, dtype="int16")),
        },
        coords={"time": times, "x": np.linspace(0, 1, 8), "y": [f"s{i}" for i in range(6)]},
        attrs={"title": "round trip"},
    )


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("use_dask", [False, True], ids=["eager", "dask"])
def test_dataset_round_trip(make_backend: Any, backend: Store, zarr_format: int, use_dask: bool) -> None:
    ds = make_dataset()
    if use_dask:
        ds = ds.chunk({"time": 6, "x": 4})
    else:
        ds.temperature.encoding["chunks"] = (6, 4, 6)
    ds.to_zarr(ZarrStore(backend), zarr_format=zarr_format, consolidated=True, mode="w")
    expected = ds.load().copy(deep=True)
    expected.temperature.values[:6] += 100  # rewrite the first time chunk in place
    region = expected.isel(time=slice(0, 6)).drop_vars(["flag", "x", "y"])
    region.to_zarr(ZarrStore(backend), region={"time": slice(0, 6)}, mode="r+")

    with xr.open_zarr(ZarrStore(make_backend.reopen(backend)), consolidated=True) as back:
        xr.testing.assert_identical(back.load(), expected)
        assert back.temperature.encoding["chunks"] == (6, 4, 6)


def test_append_along_time(make_backend: Any, backend: Store) -> None:
    ds = make_dataset()
    ds.isel(time=slice(0, 12)).to_zarr(ZarrStore(backend), mode="w")
    ds.isel(time=slice(12, None)).to_zarr(ZarrStore(backend), append_dim="time")
    with xr.open_zarr(ZarrStore(make_backend.reopen(backend))) as back:
        xr.testing.assert_identical(back.load(), ds.load())
