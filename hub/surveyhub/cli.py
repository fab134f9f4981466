"""The ``surveyhub`` command line: run the platform and manage the release store.

Each sub-command is a thin layer over the library, so that what an operator types and what the tests
call are the same code.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from surveyhub._version import __version__

#: Where ``surveyhub up`` keeps its state on the embedded default (release store, hub database, cloud space).
DEFAULT_HOME = Path(os.environ.get("SURVEYHUB_HOME", "var"))
DEMO_ROWS = 10_000


def _parse_policy(text: str) -> tuple[bool, tuple[str, ...]]:
    if text == "public":
        return True, ()
    if text.startswith("groups:") and text[7:].strip():
        return False, tuple(g.strip() for g in text[7:].split(",") if g.strip())
    raise argparse.ArgumentTypeError(f"policy {text!r}: use 'public' or 'groups:NAME[,NAME...]'")


def _cmd_mock(args: argparse.Namespace) -> int:
    from surveyhub.releases.mock.release import build_mock_release

    urls = build_mock_release(
        args.root,
        args.release,
        args.rows,
        fits_files=args.fits_files,
        seed=args.seed,
        workers=args.workers,
        replace=args.replace,
    )
    for version, url in urls.items():
        print(f"{args.release}/{version}: {url}")
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from surveyhub.releases.ingest import IngestRefused, publish_folder

    public, groups = args.policy
    try:
        report = publish_folder(
            args.source,
            args.root,
            args.release,
            args.version,
            public=public,
            groups=groups,
            catalog=args.catalog,
            title=args.title,
            allow_failures=args.allow_failures,
            replace=args.replace,
        )
    except IngestRefused as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(report.summary())
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from surveyhub.releases.registry import ReleaseStore

    store = ReleaseStore(args.root)
    versions = store.versions(set(args.group))
    if not versions:
        print(f"no release versions readable by groups {sorted(args.group)} in {store.url}")
    for v in versions:
        m = v.manifest
        print(f"{v.key:16} {m.policy.describe():40} {m.counts.get('lrs_spectra', 0):>12,} LRS  {m.title}")
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    from surveyhub.releases.mock.release import build_mock_release
    from surveyhub.releases.registry import ReleaseStore

    home = Path(args.home).resolve()
    root = home / "store"
    store = ReleaseStore(str(root))
    if not store.versions({"lamost-wg"}):
        print(f"Building the demo release ({args.demo_rows:,} spectra with FITS files) in {root} ...")
        build_mock_release(str(root), "DEMO", args.demo_rows, seed=42)
    else:
        print(f"Reusing the release store in {root}")
    print(f"Release store: {root}")
    for v in store.versions({"lamost-wg"}):
        print(f"  {v.key:10} {v.manifest.policy.describe():36} {v.url()}")
    print(
        "The hub itself is not part of this version yet: open the store with surveyhub.releases.ReleaseStore."
    )
    return 0


def _cmd_archive(args: argparse.Namespace) -> int:
    import asyncio

    from surveyhub.archive.engine import Limits
    from surveyhub.archive.server import serve

    limits = Limits(max_radius_deg=args.max_radius, timeout_s=args.timeout)
    asyncio.run(
        serve(
            args.root,
            port=args.port,
            host=args.host,
            base_url=args.base_url,
            cache_dir=args.cache,
            tokens_file=args.tokens,
            allow_anonymous=args.allow_anonymous,
            limits=limits,
            database_url=args.db,
        )
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and documentation)."""
    parser = argparse.ArgumentParser(prog="surveyhub", description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("--version", action="version", version=f"surveyhub {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the platform on the embedded default")
    up.add_argument("--home", default=str(DEFAULT_HOME), help="state folder (default: %(default)s)")
    up.add_argument(
        "--demo-rows", type=int, default=DEMO_ROWS, help="spectra in the demo (default: %(default)s)"
    )
    up.set_defaults(func=_cmd_up)

    archive = sub.add_parser("archive", help="run the archive service standalone (development)")
    archive.add_argument("--root", required=True, help="store root: a path or an fsspec URL")
    archive.add_argument("--port", type=int, default=8890)
    archive.add_argument("--host", default="127.0.0.1")
    archive.add_argument("--base-url", default="/")
    archive.add_argument(
        "--cache", default=str(DEFAULT_HOME / "archive-cache"), help="serving copies and plots"
    )
    archive.add_argument("--tokens", default=None, help="TOML file of development tokens, users and groups")
    archive.add_argument(
        "--allow-anonymous", action="store_true", help="anonymous callers read public versions"
    )
    archive.add_argument("--db", default=None, help="platform database URL (default: SQLite in the cache)")
    archive.add_argument("--max-radius", type=float, default=10.0, help="largest cone, degrees")
    archive.add_argument("--timeout", type=float, default=60.0, help="time limit of one query, seconds")
    archive.set_defaults(func=_cmd_archive)

    release = sub.add_parser("release", help="manage the release store").add_subparsers(
        dest="action", required=True
    )

    mock = release.add_parser("mock", help="write a realistic mock release (v0, v1, v2)")
    mock.add_argument("--root", required=True, help="store root: a path or an fsspec URL")
    mock.add_argument("--release", default="DEMO", help="release name (default: %(default)s)")
    mock.add_argument("--rows", type=int, required=True, help="LRS spectra in v0")
    mock.add_argument(
        "--fits-files", type=int, default=None, help="FITS files per spectroscopic catalog (default: all)"
    )
    mock.add_argument("--seed", type=int, default=42)
    mock.add_argument("--workers", type=int, default=None, help="Dask worker processes for partitioning")
    mock.add_argument("--replace", action="store_true", help="replace versions already published")
    mock.set_defaults(func=_cmd_mock)

    publish = release.add_parser("publish", help="ingest a folder of real LAMOST FITS files as a version")
    publish.add_argument("source", help="folder of LAMOST FITS files (searched recursively)")
    publish.add_argument("--root", required=True, help="store root: a path or an fsspec URL")
    publish.add_argument("--release", required=True)
    publish.add_argument("--version", required=True, dest="version")
    publish.add_argument(
        "--policy",
        type=_parse_policy,
        default=(False, ("lamost-wg",)),
        help="'public' or 'groups:NAME[,NAME...]' (default: groups:lamost-wg)",
    )
    publish.add_argument("--catalog", default=None, help="catalog file: FITS table or CSV ('|' or ',')")
    publish.add_argument("--title", default=None)
    publish.add_argument("--allow-failures", action="store_true", help="publish even if some files fail")
    publish.add_argument("--replace", action="store_true", help="replace a version already published")
    publish.set_defaults(func=_cmd_publish)

    listing = release.add_parser("list", help="list the versions some groups may read")
    listing.add_argument("--root", required=True)
    listing.add_argument("--group", action="append", default=[], help="a group of the reader (repeatable)")
    listing.set_defaults(func=_cmd_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``surveyhub`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
