"""The release store: versioned survey releases on shared storage, and readers and writers of their files.

The names most code needs are importable from here. A small mock release, opened as a researcher would
(the groups decide what is visible; catalogs open lazily with lsdb; spectra are found by obsid):

>>> import tempfile
>>> from surveyhub.releases.mock.release import build_mock_release
>>> root = tempfile.mkdtemp()
>>> _ = build_mock_release(root, "DEMO", 300, fits_files=5, seed=1, log=lambda _: None)
>>> store = ReleaseStore(root)
>>> [v.key for v in store.versions(groups={"lamost-partners"})]
['DEMO/v1', 'DEMO/v2']
>>> v2 = store.version("DEMO", "v2", groups=set())
>>> v2.catalog_names
['lrs', 'stellar', 'mrs', 'gaia']
>>> lrs = v2.open_catalog("lrs", columns=["obsid", "ra", "dec", "class"]).compute()
>>> len(lrs) == v2.manifest.counts["lrs_spectra"]
True
>>> obsid = int(lrs["obsid"].min())
>>> v2.locate_spectrum(obsid).relpath.startswith("fits/")
True
>>> spec = v2.read_spectrum(obsid)
>>> spec.meta["obsid"] == obsid, spec.wavelength.size, spec.kind
(True, 3909, 'LRS')
>>> store.version("DEMO", "v0", groups={"lamost-partners"})
Traceback (most recent call last):
...
surveyhub.releases.registry.VersionNotFound: no release version DEMO/v0
"""

from surveyhub.releases.manifest import CatalogInfo, Policy, ReleaseManifest
from surveyhub.releases.registry import ReleaseStore, ReleaseVersion, SpectrumNotFound, VersionNotFound
from surveyhub.releases.spectrum import Spectrum, SpectrumReadError, read_spectrum

__all__ = [
    "CatalogInfo",
    "Policy",
    "ReleaseManifest",
    "ReleaseStore",
    "ReleaseVersion",
    "Spectrum",
    "SpectrumNotFound",
    "SpectrumReadError",
    "VersionNotFound",
    "read_spectrum",
]
