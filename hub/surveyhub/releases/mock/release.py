"""``surveyhub release mock``: a complete, realistic release for demos, tests and scale runs.

One call writes three nested versions of a release (v0 for the working group, v1 for partners, v2 public;
v2 within v1 within v0) with the LRS general catalog, the A/F/G/K stellar parameter catalog, the MRS
catalog, the released FITS files in LAMOST's tree, the columnar spectra store and an external Gaia-like
catalog for cross-matching. Rows are generated plate by plate in chunks, so memory stays bounded however
many rows are asked for; each version is published atomically (see :mod:`surveyhub.releases.publish`).
The same seed gives the same release.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from surveyhub.releases.columns import (
    GAIA_COLUMNS,
    LRS_COLUMNS,
    MRS_COLUMNS,
    SPECTRA_COLUMNS,
    STELLAR_COLUMNS,
    Column,
)
from surveyhub.releases.grid import LRS_COEFF0, LRS_COEFF1, LRS_NPIX
from surveyhub.releases.hats_io import (
    SPECTRA_PIXEL_THRESHOLD,
    SPECTRA_ROW_GROUP_ROWS,
    LevelReader,
    dask_client,
    import_collection,
    published_schema,
)
from surveyhub.releases.ingest import LAMOST_ACKNOWLEDGEMENT
from surveyhub.releases.layout import CATALOGS_DIR, FITS_DIR, SPECTRA_DIR
from surveyhub.releases.manifest import CatalogInfo, Policy, ReleaseManifest
from surveyhub.releases.mock.files import MockFileWriter
from surveyhub.releases.mock.survey import Plates, lrs_rows, make_plates, mrs_rows
from surveyhub.releases.publish import Publication
from surveyhub.releases.registry import SPECTRUM_INDEX_COLUMNS, ReleaseStore

#: (version, lowest release level it holds, who may read it).
VERSIONS: tuple[tuple[str, int, Policy], ...] = (
    ("v0", 0, Policy(groups=("lamost-wg",))),
    ("v1", 1, Policy(groups=("lamost-wg", "lamost-partners"))),
    ("v2", 2, Policy(public=True)),
)
_VERSION_TEXT = {
    "v0": "Working-group version: every spectrum reduced so far, for the LAMOST working group only.",
    "v1": "Partner version: released to domestic users and international partners one year after v0.",
    "v2": "Public version: released to the whole world 18 months after v1.",
}
ACKNOWLEDGEMENT = (
    LAMOST_ACKNOWLEDGEMENT + " (This is a synthetic mock release made by surveyhub; cite it as such.)"
)
_CATALOG_TEXT = {
    "lrs": ("LRS general catalog", "Every low-resolution spectrum with the pipeline's classification."),
    "stellar": ("LRS A, F, G and K type stars", "Stellar parameters from LASP for A, F, G and K stars."),
    "mrs": ("MRS general catalog", "Every medium-resolution spectrum with LASP-MRS parameters."),
    "gaia": ("External Gaia-like catalog", "Synthetic astrometry and photometry for cross-matching."),
}
#: Rows per partition when importing: catalogs of this size keep a cone to a few small files.
CATALOG_PIXEL_THRESHOLD = 300_000


@dataclass
class _Tally:
    """Rows written per catalog and release level (to count each version without rereading)."""

    rows: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0]))

    def add(self, name: str, levels: np.ndarray) -> None:
        counts = np.bincount(np.asarray(levels, dtype=np.int64), minlength=3)
        for level in range(3):
            self.rows[name][level] += int(counts[level])

    def in_version(self, name: str, min_level: int) -> int:
        return sum(self.rows[name][min_level:])


def _arrow(
    df: pd.DataFrame, columns: tuple[Column, ...], internal: tuple[str, ...] = ("_level",)
) -> pa.Table:
    schema = published_schema(columns, internal=internal)
    return pa.Table.from_pandas(df[[f.name for f in schema]], schema=schema, preserve_index=False)


def _plate_chunks(plates: Plates, chunk_rows: int) -> list[np.ndarray]:
    """Groups of consecutive plates holding about ``chunk_rows`` rows each."""
    bounds = np.cumsum(plates.nobj) // max(chunk_rows, 1)
    return [np.flatnonzero(bounds == b) for b in np.unique(bounds)]


def _gaia_rows(
    rng: np.random.Generator, counterparts: pd.DataFrame, field_stars: int, plates: Plates
) -> pd.DataFrame:
    """Gaia-like rows: the survey's counterparts (within ~50 mas) plus field stars around the plates."""
    from surveyhub.releases.mock.footprint import scatter_in_plate

    n = len(counterparts)
    jitter = 0.05 / 3600.0
    p = rng.integers(0, len(plates), field_stars)
    fra, fdec = scatter_in_plate(rng, plates.ra[p], plates.dec[p])
    ra = np.concatenate(
        [
            counterparts["ra"].to_numpy()
            + rng.normal(0, jitter, n) / np.cos(np.radians(counterparts["dec"])),
            fra,
        ]
    )
    dec = np.concatenate([counterparts["dec"].to_numpy() + rng.normal(0, jitter, n), fdec])
    m = n + field_stars
    return pd.DataFrame(
        {
            "source_id": np.concatenate(
                [counterparts["gaia_source_id"].to_numpy(), rng.integers(7 * 10**18, 9 * 10**18, field_stars)]
            ),
            "ra": np.mod(ra, 360.0),
            "dec": np.clip(dec, -90.0, 90.0),
            "pmra": rng.normal(0.0, 6.0, m).astype(np.float32),
            "pmdec": rng.normal(-3.0, 6.0, m).astype(np.float32),
            "parallax": rng.exponential(0.8, m).astype(np.float32),
            "phot_g_mean_mag": np.concatenate(
                [counterparts["gaia_g_mean_mag"].to_numpy(), rng.uniform(12.0, 20.5, field_stars)]
            ).astype(np.float32),
        }
    )


def build_mock_release(
    root: str,
    release: str = "DEMO",
    rows: int = 10_000,
    *,
    fits_files: int | None = None,
    columnar_spectra: int | None = None,
    versions: Sequence[str] | None = None,
    seed: int = 42,
    mrs_fraction: float = 0.05,
    gaia_field_fraction: float = 0.5,
    chunk_rows: int = 250_000,
    workers: int | None = None,
    replace: bool = False,
    storage_options: dict | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, str]:
    """Write release ``release`` with versions v0, v1, v2 under store ``root``; returns version -> URL.

    ``rows`` LRS spectra in v0 (v1 and v2 hold the older plates' subsets), ``mrs_fraction`` as many MRS
    spectra, FITS files for the first ``fits_files`` rows of each of the LRS and MRS catalogs (all by
    default) and the columnar store for the LRS rows that have files. ``columnar_spectra`` gives the
    first that many LRS rows columnar spectra whether or not they have files (at least every row with a
    file): a scale run needs a whole release's columnar store, and writing 100,000 FITS files it will not
    read would take most of its time. ``versions`` writes only some of v0, v1, v2 (v0 among them: it
    holds every row; the rows are the same whichever are written), since partitioning each version's
    spectra is most of a large mock's build. ``storage_options`` configure the store's fsspec filesystem
    (for ``s3://`` roots: endpoint, keys).
    """
    if rows < 1:
        raise ValueError("rows must be at least 1")
    if fits_files is not None and fits_files < 0:
        raise ValueError("fits_files must be 0 or more")
    store = ReleaseStore(root, storage_options)
    # Separate streams, so the catalogs do not depend on how many spectra get files.
    rng, spectra_rng, gaia_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    n_mrs = max(round(rows * mrs_fraction), 1) if mrs_fraction > 0 else 0
    limit_lrs = rows if fits_files is None else min(fits_files, rows)
    limit_mrs = n_mrs if fits_files is None else min(fits_files, n_mrs)
    if columnar_spectra is not None and columnar_spectra < limit_lrs:
        raise ValueError(
            f"columnar_spectra ({columnar_spectra}) must be at least the LRS rows with FITS files "
            f"({limit_lrs}): every released file has its columnar spectrum"
        )
    limit_columnar = limit_lrs if columnar_spectra is None else min(columnar_spectra, rows)
    chosen = _chosen_versions(versions)

    with contextlib.ExitStack() as stack:
        pubs = {v: stack.enter_context(Publication(store, release, v, replace=replace)) for v, _, _ in chosen}
        work = Path(tempfile.mkdtemp(prefix=".mock-work-", dir=pubs["v0"].staging.parent))
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        levels = {v: level for v, level, _ in chosen}
        writer = MockFileWriter(
            {v: pubs[v].staging for v, _, _ in chosen}, levels, rng=spectra_rng, release=release, log=log
        )
        stack.callback(writer.close)
        tally = _Tally()
        spans: list[int] = []

        lrs_plates = make_plates(rng, rows)
        mrs_plates = make_plates(rng, n_mrs, mrs=True, first_sequence=len(lrs_plates) + 1) if n_mrs else None
        counterparts: list[pd.DataFrame] = []
        done = 0
        for i, which in enumerate(_plate_chunks(lrs_plates, chunk_rows)):
            df = lrs_rows(rng, lrs_plates, which)
            tally.add("lrs", df["_level"].to_numpy())
            pq.write_table(_arrow(df, LRS_COLUMNS), work / f"lrs-{i:05d}.parquet")
            stellar = df[df["teff"] > -9999]
            tally.add("stellar", stellar["_level"].to_numpy())
            pq.write_table(_arrow(stellar, STELLAR_COLUMNS), work / f"stellar-{i:05d}.parquet")
            counterparts.append(
                df.loc[df["gaia_source_id"] > 0, ["ra", "dec", "gaia_source_id", "gaia_g_mean_mag"]]
            )
            spans += [int(df["mjd"].min()), int(df["mjd"].max())]
            with_spectra = df.iloc[: max(0, min(len(df), limit_columnar - done))]
            if len(with_spectra):
                files = max(0, min(len(with_spectra), limit_lrs - done))  # the first rows have files
                spectra = writer.write_lrs(with_spectra, work / f"spectra-{i:05d}.parquet", files=files)
                tally.add("spectra", spectra)
                tally.add("fits", spectra[:files])
            done += len(df)
            log(f"  LRS rows {done:,}/{rows:,} (FITS files {min(done, limit_lrs):,})")
        if mrs_plates is not None:
            done = 0
            for i, which in enumerate(_plate_chunks(mrs_plates, chunk_rows)):
                df = mrs_rows(rng, mrs_plates, which)
                tally.add("mrs", df["_level"].to_numpy())
                pq.write_table(_arrow(df, MRS_COLUMNS), work / f"mrs-{i:05d}.parquet")
                counterparts.append(df[["ra", "dec", "gaia_source_id", "gaia_g_mean_mag"]])
                with_files = df.iloc[: max(0, min(len(df), limit_mrs - done))]
                if len(with_files):
                    tally.add("fits", writer.write_mrs(with_files))
                done += len(df)
            log(f"  MRS rows {n_mrs:,} (FITS files {limit_mrs:,})")
        gaia = _gaia_rows(
            gaia_rng, pd.concat(counterparts, ignore_index=True), int(rows * gaia_field_fraction), lrs_plates
        )
        pq.write_table(
            pa.Table.from_pandas(gaia, schema=published_schema(GAIA_COLUMNS), preserve_index=False),
            work / "gaia.parquet",
        )
        tally.add("gaia", np.full(len(gaia), 2))

        log("  partitioning catalogs (hats-import)")
        manifests: dict[str, ReleaseManifest] = {}
        with dask_client(workers) as client:
            for version, level, policy in chosen:
                staging = pubs[version].staging
                catalogs: dict[str, CatalogInfo] = {}
                for name, columns in (
                    ("lrs", LRS_COLUMNS),
                    ("stellar", STELLAR_COLUMNS),
                    ("mrs", MRS_COLUMNS),
                ):
                    files = sorted(work.glob(f"{name}-*.parquet"))
                    if not files or tally.in_version(name, level) == 0:
                        continue
                    (staging / CATALOGS_DIR).mkdir(exist_ok=True)
                    import_collection(
                        files,
                        staging / CATALOGS_DIR / name,
                        name,
                        client=client,
                        file_reader=LevelReader(level),
                        pixel_threshold=CATALOG_PIXEL_THRESHOLD,
                        index_extra_columns=SPECTRUM_INDEX_COLUMNS if name in ("lrs", "mrs") else (),
                    )
                    title, text = _CATALOG_TEXT[name]
                    catalogs[name] = CatalogInfo(
                        name, title, f"{CATALOGS_DIR}/{name}", tally.in_version(name, level), columns, text
                    )
                gaia_dir = staging / CATALOGS_DIR / "gaia"
                if version == VERSIONS[0][0]:
                    import_collection(
                        [work / "gaia.parquet"],
                        gaia_dir,
                        "gaia",
                        client=client,
                        index_column=None,
                        pixel_threshold=CATALOG_PIXEL_THRESHOLD,
                    )
                    first_gaia = gaia_dir
                else:
                    shutil.copytree(first_gaia, gaia_dir, copy_function=os.link)
                title, text = _CATALOG_TEXT["gaia"]
                catalogs["gaia"] = CatalogInfo(
                    "gaia", title, f"{CATALOGS_DIR}/gaia", len(gaia), GAIA_COLUMNS, text, ""
                )
                spectra_info: dict[str, object] = {}
                spectra_files = sorted(work.glob("spectra-*.parquet"))
                if spectra_files and tally.in_version("spectra", level):
                    import_collection(
                        spectra_files,
                        staging / SPECTRA_DIR,
                        "spectra",
                        client=client,
                        file_reader=LevelReader(level, chunksize=2_000),
                        pixel_threshold=SPECTRA_PIXEL_THRESHOLD,
                        row_group_rows=SPECTRA_ROW_GROUP_ROWS,
                        margin_arcsec=None,
                        index_column="obsid",
                    )
                    spectra_info = {
                        "path": SPECTRA_DIR,
                        "catalog": "spectra",
                        "rows": tally.in_version("spectra", level),
                        "grid": {"coeff0": LRS_COEFF0, "coeff1": LRS_COEFF1, "npix": LRS_NPIX},
                        "columns": [c.to_dict() for c in SPECTRA_COLUMNS],
                    }
                manifest = ReleaseManifest(
                    release=release,
                    version=version,
                    title=f"LAMOST {release} {version} (mock)",
                    description=f"Synthetic LAMOST-like release from `surveyhub release mock` (seed {seed}). "
                    + _VERSION_TEXT[version],
                    policy=policy,
                    acknowledgement=ACKNOWLEDGEMENT,
                    catalogs=catalogs,
                    observation_start=_mjd_date(min(spans)),
                    observation_end=_mjd_date(max(spans)),
                    counts={
                        "lrs_spectra": tally.in_version("lrs", level),
                        "mrs_spectra": tally.in_version("mrs", level),
                        "stars_with_parameters": tally.in_version("stellar", level),
                        "fits_files": tally.in_version("fits", level),
                        "columnar_spectra": tally.in_version("spectra", level),
                    },
                    fits={"path": FITS_DIR, "files": tally.in_version("fits", level)},
                    spectra=spectra_info,
                    published=_now(),
                )
                manifests[version] = manifest
        # Every version is complete before any becomes visible (v1 and v2 share v0's files by hard link).
        for version, manifest in manifests.items():
            pubs[version].commit(manifest)
            log(f"  published {release}/{version}: {manifest.counts['lrs_spectra']:,} LRS spectra")
        return {v: store.url_of(release, v) for v, _, _ in chosen}


def _chosen_versions(versions: Sequence[str] | None) -> tuple[tuple[str, int, Policy], ...]:
    """The entries of :data:`VERSIONS` to write (all of them for ``None``), refusing unknown names and
    a choice without v0, the version whose files the others link to."""
    if versions is None:
        return VERSIONS
    known = [v for v, _, _ in VERSIONS]
    unknown = sorted(set(versions) - set(known))
    if unknown:
        raise ValueError(f"unknown mock versions {unknown}: choose from {known}")
    if known[0] not in versions:
        raise ValueError(f"versions must include {known[0]}, which holds every row")
    return tuple(entry for entry in VERSIONS if entry[0] in versions)


def _mjd_date(mjd: int) -> str:
    from astropy.time import Time

    return str(Time(float(mjd), format="mjd").datetime64.astype("datetime64[D]"))


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).replace(microsecond=0).isoformat()
