"""Client-side helpers for notebooks: release data as Dask collections, run on Dask Gateway, results saved.

Inside the platform nothing needs configuring: versions are read through ``~/releases``, clusters come
from the hub's Dask Gateway and results go to the user's cloud space. The usual session::

    from surveyhub import analysis as sa

    client = sa.connect(workers=2, worker_memory=2)         # a Dask Gateway cluster, as you
    q = sa.select("DEMO", "v2", where="snrg > 20", classes=["STAR", "GALAXY"])
    stack = sa.stack_spectra(q.open_spectra(), by="class")  # progress shown while it runs
    stack.plot()
    sa.write_result(stack, "stacks/by-class", query=q)      # Parquet + the query, atomically

    snr = sa.map_spectra(q.open_spectra(), lambda s: float(np.median(s.flux * np.sqrt(s.ivar))))
    matches = sa.crossmatch_gaia(q, radius_arcsec=2)         # lsdb, with Gaia's margin cache
    sa.write_result(matches, "gaia-matches", query=q)

Everything before :func:`compute`, :func:`stack_spectra` or :func:`write_result` is lazy (lsdb catalogs
and Dask frames), and reads only the HEALPix partitions a cone touches.
"""

from surveyhub.analysis.cluster import compute, connect, on_platform
from surveyhub.analysis.crossmatch import crossmatch, crossmatch_gaia
from surveyhub.analysis.query import Cone, Query, open_version, release_store, select
from surveyhub.analysis.results import cloud_space, read_result, write_result
from surveyhub.analysis.spectra import WAVELENGTH, GridSpectrum, Stack, map_spectra, stack_spectra

__all__ = [
    "WAVELENGTH",
    "Cone",
    "GridSpectrum",
    "Query",
    "Stack",
    "cloud_space",
    "compute",
    "connect",
    "crossmatch",
    "crossmatch_gaia",
    "map_spectra",
    "on_platform",
    "open_version",
    "read_result",
    "release_store",
    "select",
    "stack_spectra",
    "write_result",
]
