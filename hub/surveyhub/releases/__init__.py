"""The release store: versioned survey releases on shared storage, and readers and writers of their files.

The names most code needs are importable from here::

    from surveyhub.releases import ReleaseStore, read_spectrum
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
