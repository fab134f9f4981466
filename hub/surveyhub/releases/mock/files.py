"""The files of a mock release: LAMOST FITS files in the release tree, and rows of the columnar store.

Spectra are synthesised in batches (:mod:`surveyhub.releases.mock.spectra_model`) from each catalog row,
written once into the v0 tree and hard-linked into the newer versions that hold the row, as the real
release tree would share them (a file is identical in every version that has it). Compression runs in a
small thread pool: zlib releases the GIL, so two cores write about twice as fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from surveyhub.releases.columns import SPECTRA_COLUMNS
from surveyhub.releases.fits_writer import write_lrs_fits, write_mrs_fits
from surveyhub.releases.grid import LRS_NPIX
from surveyhub.releases.hats_io import published_schema
from surveyhub.releases.layout import fits_relpath
from surveyhub.releases.mock.spectra_model import synthesize_lrs, synthesize_mrs

#: Spectra synthesised at once: large enough for numpy to be efficient, small enough to stay in cache.
BATCH = 256
#: Header cards of a spectrum that come straight from its catalog row.
_META_COLUMNS = (
    "obsid",
    "designation",
    "ra",
    "dec",
    "ra_obs",
    "dec_obs",
    "planid",
    "lmjd",
    "mjd",
    "spid",
    "fiberid",
    "obsdate",
    "class",
    "subclass",
    "z",
    "z_err",
    "snru",
    "snrg",
    "snrr",
    "snri",
    "snrz",
    "tsource",
    "tfrom",
    "tcomment",
    "fibertype",
    "fibermask",
    "mag_ps_g",
    "mag_ps_r",
    "mag_ps_i",
    "mag_ps_z",
    "mag_ps_y",
    "offsets",
    "offsets_v",
)
_OBJTYPE = {"STAR": "star", "GALAXY": "galaxy", "QSO": "QSO", "Unknown": "star"}


def _meta(row: Mapping[str, Any], data_v: str) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for name in _META_COLUMNS:
        if name not in row:
            continue
        value = row[name]
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and value in (-9999.0, -999.0):
            value = None
        meta[name] = value
    meta["objtype"] = _OBJTYPE.get(str(row.get("class")), "star")
    meta["data_v"] = data_v
    meta["verspipe"] = "v2.9.8"
    meta["date_obs"] = f"{row['obsdate']}T14:{int(row['fiberid']) % 60:02d}:00"
    meta["date"] = f"{row['obsdate']}T23:30:00"  # the file's creation time, fixed: a seed gives equal bytes
    return meta


def _list_array(values: np.ndarray) -> pa.ListArray:
    n, m = values.shape
    offsets = pa.array(np.arange(0, (n + 1) * m, m, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1)))


class MockFileWriter:
    """Writes the FITS files and columnar rows of mock spectra into the staging folders of every version."""

    def __init__(
        self,
        stagings: Mapping[str, Path],
        min_levels: Mapping[str, int],
        *,
        rng: np.random.Generator,
        release: str = "DEMO",
        log: Callable[[str], None] = print,
        threads: int = 2,
    ) -> None:
        self.stagings = dict(stagings)
        self.min_levels = dict(min_levels)
        self.base = min(self.min_levels, key=self.min_levels.__getitem__)  # the version holding every row
        self.rng = rng
        self.release = release
        self.log = log
        self.pool = ThreadPoolExecutor(max_workers=threads)

    def close(self) -> None:
        """Stop the compression threads."""
        self.pool.shutdown()

    def _link(self, relpath: str, level: int) -> None:
        """Hard-link the file written into the base version into every other version holding ``level``."""
        source = self.stagings[self.base] / relpath
        for version, min_level in self.min_levels.items():
            if version != self.base and level >= min_level:
                target = self.stagings[version] / relpath
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(source, target)

    def _write_all(self, jobs: list[tuple[Callable[..., str], tuple, dict, str, int]]) -> None:
        futures = [
            (self.pool.submit(fn, *args, **kwargs), rel, level) for fn, args, kwargs, rel, level in jobs
        ]
        for future, rel, level in futures:
            future.result()
            self._link(rel, level)

    def write_lrs(self, rows: pd.DataFrame, spectra_file: Path, files: int | None = None) -> np.ndarray:
        """Write the LRS files of ``rows`` (of the first ``files`` of them, if given), and the columnar
        rows of all of them into ``spectra_file``; returns their levels."""
        schema = published_schema(SPECTRA_COLUMNS, internal=("_level",))
        base = self.stagings[self.base]
        with pq.ParquetWriter(spectra_file, schema) as out:
            for start in range(0, len(rows), BATCH):
                chunk = rows.iloc[start : start + BATCH]
                teff = chunk["_teff"].to_numpy(np.float64)
                batch = synthesize_lrs(
                    self.rng,
                    cls=chunk["class"].to_numpy(str),
                    subclass=chunk["subclass"].to_numpy(str),
                    teff=teff,
                    logg=chunk["_logg"].to_numpy(np.float64),
                    feh=chunk["_feh"].to_numpy(np.float64),
                    z=np.where(chunk["z"].to_numpy() > -9999, chunk["z"].to_numpy(), 0.0),
                    snrg=chunk["snrg"].to_numpy(np.float64),
                    mag_g=chunk["mag_ps_g"].to_numpy(np.float64),
                )
                jobs = []
                with_files = len(chunk) if files is None else max(0, min(len(chunk), files - start))
                for i, row in enumerate(chunk.iloc[:with_files].to_dict("records")):
                    rel = fits_relpath(
                        row["obsdate"], row["planid"], row["lmjd"], row["spid"], row["fiberid"]
                    )
                    arrays = {
                        "flux": batch.flux[i],
                        "ivar": batch.ivar[i],
                        "andmask": batch.andmask[i],
                        "ormask": batch.ormask[i],
                        "normalization": batch.normalization[i] if row.get("with_norm_flux") else None,
                    }
                    meta = _meta(row, f"LAMOST {self.release}")
                    (base / rel).parent.mkdir(parents=True, exist_ok=True)
                    jobs.append(
                        (write_lrs_fits, (base / rel, arrays), {"meta": meta}, rel, int(row["_level"]))
                    )
                self._write_all(jobs)
                assert batch.flux.shape[1] == LRS_NPIX
                out.write_table(
                    pa.Table.from_arrays(
                        [
                            pa.array(chunk["obsid"].to_numpy(np.int64)),
                            pa.array(chunk["ra"].to_numpy(np.float64)),
                            pa.array(chunk["dec"].to_numpy(np.float64)),
                            _list_array(batch.flux),
                            _list_array(batch.ivar),
                            _list_array(batch.andmask),
                            _list_array(batch.ormask),
                            pa.array(chunk["_level"].to_numpy(np.int8)),
                        ],
                        schema=schema,
                    )
                )
        return rows["_level"].to_numpy()

    def write_mrs(self, rows: pd.DataFrame) -> np.ndarray:
        """Write the MRS (``med-``) files of ``rows``; returns their levels."""
        base = self.stagings[self.base]
        for start in range(0, len(rows), BATCH):
            chunk = rows.iloc[start : start + BATCH]
            arms = synthesize_mrs(
                self.rng,
                teff=chunk["_teff"].to_numpy(np.float64),
                logg=chunk["_logg"].to_numpy(np.float64),
                feh=chunk["_feh"].to_numpy(np.float64),
                rv=chunk["_rv"].to_numpy(np.float64),
                snr=chunk["snr_b"].to_numpy(np.float64),
                n_exposures=chunk["nexp"].to_numpy(np.int64),
            )
            jobs = []
            for i, row in enumerate(chunk.to_dict("records")):
                rel = fits_relpath(
                    row["obsdate"], row["planid"], row["lmjd"], row["spid"], row["fiberid"], kind="MRS"
                )
                coadds, exposures = _mrs_parts(arms, i, int(row["lmjd"]), int(row["nexp"]))
                meta = _meta(row, f"LAMOST {self.release}") | {"class": "STAR", "objtype": "star"}
                (base / rel).parent.mkdir(parents=True, exist_ok=True)
                jobs.append(
                    (write_mrs_fits, (base / rel, coadds, exposures, meta), {}, rel, int(row["_level"]))
                )
            self._write_all(jobs)
        return rows["_level"].to_numpy()


def _mrs_parts(arms: Mapping[str, Any], i: int, lmjd: int, nexp: int) -> tuple[dict, dict]:
    """Row ``i`` of a synthesised MRS batch as the coadd and exposure arrays the FITS writer takes.

    Exposures are named by their local modified Julian minute, 20-minute exposures from 20:00 local time.
    """
    coadds: dict[str, dict[str, Any]] = {}
    exposures: dict[str, dict[str, Any]] = {}
    for name, arm in arms.items():
        coadds[name] = {
            "wavelength": arm.wavelength,
            "flux": arm.flux[i],
            "ivar": arm.ivar[i],
            "andmask": arm.andmask[i],
            "ormask": arm.ormask[i],
            "meta": {"snr": float(np.median(arm.flux[i] * np.sqrt(arm.ivar[i])))},
        }
        for e in range(nexp):
            lmjm = (lmjd - 1) * 1440 + 20 * 60 + 24 * e
            exposures[f"{name}-{lmjm}"] = {
                "wavelength": arm.wavelength,
                "flux": arm.exposure_flux[i, e],
                "ivar": arm.exposure_ivar[i, e],
                "andmask": arm.exposure_pixmask[i, e],
                "ormask": arm.exposure_pixmask[i, e],
                "meta": {"lmjm": lmjm, "exptime": 1200},
            }
    return coadds, exposures
