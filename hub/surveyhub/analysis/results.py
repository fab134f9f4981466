"""Results into the user's cloud space, as Parquet, with the query that produced them.

The cloud space is an fsspec URL (``SURVEYHUB_CLOUD_URL``, options in ``SURVEYHUB_CLOUD_STORAGE_OPTIONS``:
``file://`` on one machine, ``s3://`` with the user's own keys in production). A result is written under
a temporary hidden name and then moved into place, so a reader (a teammate, a later notebook, a job
still writing) sees the whole file or none of it: on POSIX the move is a rename; on S3 the final object
appears at once (the copy is one request). The query goes both into the Parquet file's own metadata
(key ``surveyhub``: it travels with the file) and into a JSON sidecar ``<name>.query.json`` for anyone
who does not read Parquet metadata; the sidecar is written first, so a visible result always has one.

>>> result_url("file:///data/users/alice/", "stacks/by-class")
'file:///data/users/alice/stacks/by-class.parquet'
>>> result_url("file:///data/users/alice/", "../bob/x.parquet")
Traceback (most recent call last):
...
ValueError: result name '../bob/x.parquet' must be a relative path inside the cloud space
"""

from __future__ import annotations

import datetime as dt
import json
import os
import posixpath
import secrets
from collections.abc import Mapping
from typing import Any

import dask
import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from surveyhub._version import __version__
from surveyhub.analysis.query import Query, describe_query, is_lsdb

#: The Parquet key-value metadata key holding the provenance document.
METADATA_KEY = b"surveyhub"


def cloud_space() -> tuple[str, dict[str, Any]]:
    """The user's cloud space URL (ending with '/') and its fsspec options, from the environment."""
    url = os.environ.get("SURVEYHUB_CLOUD_URL", "")
    if not url:
        raise RuntimeError("no cloud space here (SURVEYHUB_CLOUD_URL is not set): pass url=... instead")
    options = json.loads(os.environ.get("SURVEYHUB_CLOUD_STORAGE_OPTIONS") or "{}")
    return url if url.endswith("/") else url + "/", options


def result_url(base: str, name: str) -> str:
    """Where result ``name`` goes under the cloud space ``base`` (``.parquet`` added if missing)."""
    clean = posixpath.normpath(name)
    if not name or name.startswith("/") or clean.startswith("..") or "://" in name:
        raise ValueError(f"result name {name!r} must be a relative path inside the cloud space")
    if not clean.endswith(".parquet"):
        clean += ".parquet"
    return base.rstrip("/") + "/" + clean


def sidecar_url(url: str) -> str:
    """The JSON sidecar of a result file."""
    return url.removesuffix(".parquet") + ".query.json"


def _table(data: Any) -> pa.Table:
    """A result as an Arrow table: Stacks, lsdb catalogs and Dask frames are computed first."""
    from surveyhub.analysis.spectra import Stack

    if isinstance(data, Stack):
        data = data.to_frame()
    if is_lsdb(data) or dask.is_dask_collection(data):
        from surveyhub.analysis.cluster import compute

        data = compute(data)[0]
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pd.Series):
        data = data.to_frame()
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(pd.DataFrame(data), preserve_index=None)
    raise TypeError(f"cannot write a {type(data).__name__} as a result: give a DataFrame, table or Stack")


def _atomic_write(fs: Any, path: str, write: Any) -> None:
    """``write(file)`` into a hidden temporary name beside ``path``, then move it into place."""
    folder, base = posixpath.split(path)
    fs.makedirs(folder, exist_ok=True)
    temporary = posixpath.join(folder, f".{base}.tmp-{secrets.token_hex(6)}")
    try:
        with fs.open(temporary, "wb") as fh:
            write(fh)
        fs.mv(temporary, path)
    finally:
        if fs.exists(temporary):
            fs.rm(temporary)


def write_result(
    data: Any,
    name: str,
    *,
    query: Query | Mapping[str, Any] | str | None = None,
    metadata: Mapping[str, Any] | None = None,
    url: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> str:
    """Write ``data`` as ``<cloud space>/<name>.parquet`` with ``query`` recorded; returns the file's URL.

    ``data`` is a pandas DataFrame (or Series), an Arrow table, a :class:`~surveyhub.analysis.Stack`, or
    a lazy Dask frame or lsdb catalog (computed first, with progress). ``query`` is the
    :class:`~surveyhub.analysis.Query` that produced it (or any JSON-ready description, e.g. an ADQL
    string); ``metadata`` adds more (parameters, the function used). ``url`` and ``storage_options``
    choose another space (a team's, from ``SURVEYHUB_TEAMS``). An existing result is kept unless
    ``overwrite``.
    """
    if url is None:
        base, options = cloud_space()
        options = {**options, **dict(storage_options or {})}
    else:
        base, options = url, dict(storage_options or {})
    target = result_url(base, name)
    fs, path = fsspec.core.url_to_fs(target, **options)
    if not overwrite and fs.exists(path):
        raise FileExistsError(f"{target} exists: choose another name, or overwrite=True")
    table = _table(data)
    record = {
        "query": describe_query(query),
        "metadata": dict(metadata or {}),
        "rows": table.num_rows,
        "columns": table.column_names,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "surveyhub": __version__,
    }
    document = json.dumps(record, indent=2, default=str).encode()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), METADATA_KEY: document})
    _, sidecar = fsspec.core.url_to_fs(sidecar_url(target), **options)
    _atomic_write(fs, sidecar, lambda fh: fh.write(document))
    _atomic_write(fs, path, lambda fh: pq.write_table(table, fh))
    return target


def read_result(
    name: str,
    *,
    url: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a result back: its rows and the record written with it (query, metadata, when, rows)."""
    if url is None:
        base, options = cloud_space()
        options = {**options, **dict(storage_options or {})}
    else:
        base, options = url, dict(storage_options or {})
    fs, path = fsspec.core.url_to_fs(result_url(base, name), **options)
    with fs.open(path, "rb") as fh:
        table = pq.read_table(fh)
    record = json.loads((table.schema.metadata or {}).get(METADATA_KEY, b"{}"))
    return table.to_pandas(), record
