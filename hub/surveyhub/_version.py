"""The surveyhub version, written into every release.toml so a release records what wrote it."""

__version__ = "0.1.0"
