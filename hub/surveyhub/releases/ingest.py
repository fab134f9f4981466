"""``surveyhub release publish``: ingest a folder of real LAMOST files (and their catalog) as a version.

An operator points it at what LAMOST distributes: spectra in any of the layouts the reader knows, plus,
optionally, the catalog as a FITS table or a CSV with ``|`` or ``,`` between fields. Without a catalog the
rows are built from the file headers. Every file is read and checked before anything is published; files
that fail are listed with their reason, and the version is published only when there are none or the
operator accepts them (``allow_failures``). Files are stored in LAMOST's tree under their LAMOST names,
gzip-compressed; the LRS spectra also go into the columnar store on the common grid.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from astropy.io.registry import IORegistryError

from surveyhub.releases.columns import LRS_COLUMNS, MRS_COLUMNS, SPECTRA_COLUMNS, STELLAR_COLUMNS, Column
from surveyhub.releases.grid import LRS_COEFF0, LRS_COEFF1, LRS_NPIX, lrs_wavelength
from surveyhub.releases.hats_io import (
    SPECTRA_PIXEL_THRESHOLD,
    SPECTRA_ROW_GROUP_ROWS,
    dask_client,
    import_collection,
    published_schema,
)
from surveyhub.releases.layout import CATALOGS_DIR, FITS_DIR, SPECTRA_DIR, designations, fits_relpath
from surveyhub.releases.manifest import CatalogInfo, Policy, ReleaseManifest
from surveyhub.releases.publish import Publication
from surveyhub.releases.registry import SPECTRUM_INDEX_COLUMNS, ReleaseStore
from surveyhub.releases.spectrum import Spectrum, SpectrumReadError, read_spectrum

SPECTRUM_SUFFIXES = (".fits", ".fits.gz", ".fit", ".fit.gz")
_FILE_KEY = ("lmjd", "planid", "spid", "fiberid")


LAMOST_ACKNOWLEDGEMENT = (
    "Guoshoujing Telescope (the Large Sky Area Multi-Object Fiber Spectroscopic Telescope LAMOST) is a "
    "National Major Scientific Project built by the Chinese Academy of Sciences. Funding for the project has "
    "been provided by the National Development and Reform Commission. LAMOST is operated and managed by the "
    "National Astronomical Observatories, Chinese Academy of Sciences."
)


class IngestRefused(RuntimeError):
    """Some files failed and the operator did not accept failures: nothing was published."""


@dataclass
class IngestReport:
    """What a publication took in and what it refused."""

    release: str
    version: str
    url: str | None = None
    lrs: int = 0
    mrs: int = 0
    catalog_rows_without_file: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def failure_lines(self) -> str:
        """One line per refused file: path and reason."""
        return "\n".join(f"  {path}: {reason}" for path, reason in self.failures)

    def summary(self) -> str:
        """What an operator reads after publishing."""
        lines = [
            f"published {self.release}/{self.version} at {self.url}: "
            f"{self.lrs} LRS and {self.mrs} MRS spectra"
        ]
        if self.catalog_rows_without_file:
            lines.append(f"  {self.catalog_rows_without_file} catalog rows have no file in the source folder")
        if self.failures:
            lines.append(f"{len(self.failures)} files were left out (--allow-failures):")
            lines.append(self.failure_lines())
        return "\n".join(lines)


def find_spectrum_files(source: Path) -> list[Path]:
    """Every file under ``source`` that looks like a spectrum by its name (``.fits``, ``.fits.gz``)."""
    return sorted(p for p in source.rglob("*") if p.is_file() and p.name.lower().endswith(SPECTRUM_SUFFIXES))


def read_catalog_file(path: str | Path) -> pd.DataFrame:
    """A LAMOST catalog as LAMOST distributes it: FITS table, or CSV with '|' or ',' between fields."""
    path = Path(path)
    name = path.name.lower()
    try:
        if name.endswith((".fits", ".fits.gz", ".fit")):
            from astropy.table import Table

            df = Table.read(path).to_pandas()
        else:
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rt") as fh:
                first = fh.readline()
            sep = "|" if first.count("|") > first.count(",") else ","
            df = pd.read_csv(path, sep=sep, low_memory=False)
    except (OSError, ValueError, pd.errors.ParserError, IORegistryError) as exc:
        raise IngestRefused(f"catalog {path}: cannot be read: {exc}") from exc
    df.columns = [str(c).strip().lower() for c in df.columns]
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = df[col].map(lambda v: v.decode().strip() if isinstance(v, bytes) else v)
    return df


def _default(column: Column) -> Any:
    if column.dtype == "string":
        return ""
    if column.dtype == "bool":
        return False
    return -9999


def _rows_frame(records: list[dict[str, Any]], columns: tuple[Column, ...]) -> pa.Table:
    """Records -> an Arrow table of the documented columns, missing values as LAMOST writes them."""
    data: dict[str, list[Any]] = {c.name: [] for c in columns}
    for record in records:
        for column in columns:
            value = record.get(column.name)
            if value is None or (isinstance(value, float) and np.isnan(value)):
                value = _default(column)
            data[column.name].append(value)
    schema = published_schema(columns)
    return pa.Table.from_pydict(
        {c.name: pa.array(_coerce(data[c.name], c), type=schema.field(c.name).type) for c in columns},
        schema=schema,
    )


def _coerce(values: list[Any], column: Column) -> list[Any]:
    if column.dtype == "string":
        return [str(v) for v in values]
    if column.dtype == "bool":
        return [bool(v) for v in values]
    if column.dtype.startswith("int"):
        return [int(v) for v in values]
    return [float(v) for v in values]


def _header_record(spec: Spectrum) -> dict[str, Any]:
    """A catalog row from a spectrum's header (what LAMOST's own catalog would say of it)."""
    meta = dict(spec.meta)
    record = {k: v for k, v in meta.items() if v is not None}
    record.setdefault("ra_obs", meta.get("ra"))
    record.setdefault("dec_obs", meta.get("dec"))
    record["with_norm_flux"] = spec.normalization is not None
    if spec.kind == "MRS":
        for arm in ("B", "R"):
            if arm in spec.arms:
                record[f"snr_{arm.lower()}"] = spec.arms[arm].meta.get("snr")
        record["nexp"] = len(spec.exposures) // max(len(spec.arms), 1)
    return record


def on_lrs_grid(spec: Spectrum) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The spectrum's flux, ivar and masks placed on the common LRS grid (pixels it lacks: ivar 0).

    LAMOST LRS files of every era sample the same log-linear grid, only their first pixel and length
    differ, so placing is exact; a file off the grid is resampled linearly.
    """
    n = LRS_NPIX
    flux = np.zeros(n, np.float32)
    ivar = np.zeros(n, np.float32)
    andmask = np.zeros(n, np.int32)
    ormask = np.zeros(n, np.int32)
    loglam = np.log10(spec.wavelength)
    offset = (loglam[0] - LRS_COEFF0) / LRS_COEFF1
    step = (loglam[-1] - loglam[0]) / max(len(loglam) - 1, 1) / LRS_COEFF1
    if abs(offset - round(offset)) < 0.01 and abs(step - 1.0) < 1e-3:
        start = round(offset)
        lo, hi = max(start, 0), min(start + len(loglam), n)
        src = slice(lo - start, hi - start)
        flux[lo:hi] = spec.flux[src]
        ivar[lo:hi] = spec.ivar[src]
        if spec.andmask is not None:
            andmask[lo:hi] = spec.andmask[src]
        if spec.ormask is not None:
            ormask[lo:hi] = spec.ormask[src]
    else:
        grid = lrs_wavelength()
        inside = (grid >= spec.wavelength[0]) & (grid <= spec.wavelength[-1])
        flux[inside] = np.interp(grid[inside], spec.wavelength, spec.flux)
        ivar[inside] = np.interp(grid[inside], spec.wavelength, spec.ivar)
    return flux, ivar, andmask, ormask


def _store_file(src: Path, dst: Path) -> None:
    """Copy a released file into the staging tree, gzip-compressing plain FITS (LAMOST serves .fits.gz)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.name.lower().endswith(".gz"):
        shutil.copyfile(src, dst)
    else:
        with open(src, "rb") as fin, gzip.open(dst, "wb", compresslevel=6) as fout:
            shutil.copyfileobj(fin, fout)


def _match_catalog(catalog: pd.DataFrame | None) -> tuple[dict[int, dict], dict[tuple, dict]]:
    by_obsid: dict[int, dict] = {}
    by_key: dict[tuple, dict] = {}
    if catalog is None:
        return by_obsid, by_key
    for record in catalog.to_dict("records"):
        if "obsid" in record and pd.notna(record["obsid"]):
            by_obsid[int(record["obsid"])] = record
        if all(k in record for k in _FILE_KEY):
            by_key[
                (
                    int(record["lmjd"]),
                    str(record["planid"]).strip(),
                    int(record["spid"]),
                    int(record["fiberid"]),
                )
            ] = record
    return by_obsid, by_key


def publish_folder(
    source: str | Path,
    root: str,
    release: str,
    version: str,
    *,
    public: bool = False,
    groups: Iterable[str] = ("lamost-wg",),
    catalog: str | Path | None = None,
    title: str | None = None,
    allow_failures: bool = False,
    replace: bool = False,
    log: Callable[[str], None] = print,
) -> IngestReport:
    """Ingest the LAMOST files under ``source`` into ``root`` as ``release/version``; see module docs."""
    source = Path(source)
    if not source.is_dir():
        raise IngestRefused(f"source {source} is not a folder")
    report = IngestReport(release, version)
    files = find_spectrum_files(source)
    if not files:
        raise IngestRefused(f"source {source} holds no .fits or .fits.gz files")
    cat = read_catalog_file(catalog) if catalog else None
    by_obsid, by_key = _match_catalog(cat)
    store = ReleaseStore(root)

    with Publication(store, release, version, replace=replace) as pub, tempfile.TemporaryDirectory() as work:
        lrs_records: list[dict[str, Any]] = []
        mrs_records: list[dict[str, Any]] = []
        spectra: dict[str, list[Any]] = {c.name: [] for c in SPECTRA_COLUMNS}
        seen: dict[int, Path] = {}
        for path in files:
            rel = str(path.relative_to(source))
            try:
                spec = read_spectrum(path)
            except SpectrumReadError as exc:
                report.failures.append((rel, str(exc).removeprefix(f"{path.name}: ")))
                continue
            record = _header_record(spec)
            key = tuple(record.get(k) for k in _FILE_KEY)
            row = by_obsid.get(record.get("obsid", -1)) if record.get("obsid") else by_key.get(key)
            if cat is not None and row is None:
                report.failures.append(
                    (rel, "not in the catalog (no row with its obsid or plan/spectrograph/fiber)")
                )
                continue
            if row is not None:
                record.update({k: v for k, v in row.items() if pd.notna(v)})
            missing = [
                k for k in ("obsid", *_FILE_KEY, "obsdate", "ra", "dec") if record.get(k) in (None, "")
            ]
            if missing:
                hint = (
                    " (DR1 pilot files carry no OBSID: give --catalog with one)" if "obsid" in missing else ""
                )
                report.failures.append((rel, f"no {', '.join(missing)} in the header or catalog{hint}"))
                continue
            obsid = int(record["obsid"])
            if obsid in seen:
                report.failures.append((rel, f"obsid {obsid} again (already in {seen[obsid].name})"))
                continue
            seen[obsid] = path
            record.setdefault("designation", designations([record["ra"]], [record["dec"]])[0])
            relpath = fits_relpath(
                str(record["obsdate"]),
                str(record["planid"]),
                record["lmjd"],
                record["spid"],
                record["fiberid"],
                kind=spec.kind,
            )
            _store_file(path, pub.staging / relpath)
            if spec.kind == "MRS":
                mrs_records.append(record)
                continue
            lrs_records.append(record)
            flux, ivar, andmask, ormask = on_lrs_grid(spec)
            for name, value in (
                ("obsid", obsid),
                ("ra", float(record["ra"])),
                ("dec", float(record["dec"])),
                ("flux", flux),
                ("ivar", ivar),
                ("andmask", andmask),
                ("ormask", ormask),
            ):
                spectra[name].append(value)
        report.lrs, report.mrs = len(lrs_records), len(mrs_records)
        if cat is not None:
            report.catalog_rows_without_file = max(len(cat) - report.lrs - report.mrs, 0)
        if report.failures and not allow_failures:
            raise IngestRefused(
                f"{len(report.failures)} of {len(files)} files failed; nothing was published "
                f"(fix them, or accept with --allow-failures):\n{report.failure_lines()}"
            )
        if not (lrs_records or mrs_records):
            raise IngestRefused("no file could be ingested; nothing was published")

        catalogs: dict[str, CatalogInfo] = {}
        stellar_records = [r for r in lrs_records if r.get("teff") not in (None, -9999)]
        with dask_client() as client:
            for name, records, columns, text in (
                ("lrs", lrs_records, LRS_COLUMNS, "LRS general catalog"),
                ("stellar", stellar_records, STELLAR_COLUMNS, "LRS A, F, G and K type stars"),
                ("mrs", mrs_records, MRS_COLUMNS, "MRS general catalog"),
            ):
                if not records:
                    continue
                input_file = Path(work) / f"{name}.parquet"
                pq.write_table(_rows_frame(records, columns), input_file)
                (pub.staging / CATALOGS_DIR).mkdir(exist_ok=True)
                import_collection(
                    [input_file],
                    pub.staging / CATALOGS_DIR / name,
                    name,
                    client=client,
                    index_extra_columns=SPECTRUM_INDEX_COLUMNS if name != "stellar" else (),
                )
                catalogs[name] = CatalogInfo(name, text, f"{CATALOGS_DIR}/{name}", len(records), columns)
            spectra_info: dict[str, Any] = {}
            if lrs_records:
                table = pa.table(
                    {
                        c.name: pa.array(
                            spectra[c.name], type=published_schema(SPECTRA_COLUMNS).field(c.name).type
                        )
                        for c in SPECTRA_COLUMNS
                    }
                )
                pq.write_table(table, Path(work) / "spectra.parquet")
                import_collection(
                    [Path(work) / "spectra.parquet"],
                    pub.staging / SPECTRA_DIR,
                    "spectra",
                    client=client,
                    pixel_threshold=SPECTRA_PIXEL_THRESHOLD,
                    row_group_rows=SPECTRA_ROW_GROUP_ROWS,
                    margin_arcsec=None,
                )
                spectra_info = {
                    "path": SPECTRA_DIR,
                    "catalog": "spectra",
                    "rows": len(lrs_records),
                    "grid": {"coeff0": LRS_COEFF0, "coeff1": LRS_COEFF1, "npix": LRS_NPIX},
                    "columns": [c.to_dict() for c in SPECTRA_COLUMNS],
                }
        dates = sorted(str(r["obsdate"]) for r in lrs_records + mrs_records)
        manifest = ReleaseManifest(
            release=release,
            version=version,
            title=title or f"LAMOST {release} {version}",
            description=f"Published from {len(files)} files with `surveyhub release publish`.",
            policy=Policy(public=public, groups=tuple(groups)),
            acknowledgement=LAMOST_ACKNOWLEDGEMENT,
            catalogs=catalogs,
            observation_start=dates[0],
            observation_end=dates[-1],
            counts={
                "lrs_spectra": report.lrs,
                "mrs_spectra": report.mrs,
                "fits_files": report.lrs + report.mrs,
                "stars_with_parameters": len(stellar_records),
                "columnar_spectra": report.lrs,
            },
            fits={"path": FITS_DIR, "files": report.lrs + report.mrs},
            spectra=spectra_info,
            published=pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
        )
        report.url = pub.commit(manifest)
        log(report.summary())
    return report
