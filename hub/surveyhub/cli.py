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
from typing import Any

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


def _load_settings(args: argparse.Namespace) -> Any:
    from surveyhub.hub.settings import Settings

    home = Path(args.home).resolve()
    config = args.config or (str(home / "surveyhub.toml") if (home / "surveyhub.toml").exists() else None)
    return Settings.load(config, home=str(home))


def _cmd_up(args: argparse.Namespace) -> int:
    from surveyhub.hub.launch import run_platform
    from surveyhub.releases.mock.release import build_mock_release
    from surveyhub.releases.registry import ReleaseStore

    settings = _load_settings(args)
    store = ReleaseStore(settings.store.root, settings.store.storage_options or None)
    if not store.all_versions():
        print(f"Building the demo release ({args.demo_rows:,} spectra with FITS files) in {store.url} ...")
        build_mock_release(settings.store.root, "DEMO", args.demo_rows, seed=42)
    else:
        print(f"Reusing the release store in {store.url}")
    for v in store.all_versions():
        print(f"  {v.key:10} {v.manifest.policy.describe():36} {v.url()}")
    if args.no_hub:
        return 0
    return run_platform(settings)


def _cmd_team(args: argparse.Namespace) -> int:
    from surveyhub.hub.config import admin_token_file
    from surveyhub.hub.environment import internal_url
    from surveyhub.hub.teams import (
        HubClient,
        TeamError,
        add_members,
        create_team,
        list_teams,
        remove_members,
    )

    settings = _load_settings(args)
    token = os.environ.get("JUPYTERHUB_API_TOKEN") or ""
    token_file = admin_token_file(settings)
    if not token and token_file.exists():
        token = token_file.read_text().strip()
    if not token:
        print(f"no admin token: run the hub once (it writes {token_file}) or set JUPYTERHUB_API_TOKEN")
        return 2
    hub = HubClient(args.hub_url or internal_url(settings.hub.bind_url), token)
    try:
        if args.action == "create":
            team = create_team(hub, args.team, args.description)
            print(f"team {team['name']}: {', '.join(team['users']) or 'no members yet'}")
        elif args.action == "add":
            team = add_members(hub, args.team, args.users)
            print(f"team {team['name']}: {', '.join(team['users'])}")
        elif args.action == "remove":
            team = remove_members(hub, args.team, args.users)
            print(f"team {team['name']}: {', '.join(team['users']) or 'no members'}")
        else:
            teams = list_teams(hub, all_groups=args.all)
            if not teams:
                print("no teams yet: `surveyhub team create NAME`")
            for team in teams:
                kind = "team " if team.get("properties", {}).get("surveyhub_team") else "group"
                print(f"{kind} {team['name']:24} {', '.join(team['users']) or '-'}")
    except TeamError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return 0


def _cmd_archive(args: argparse.Namespace) -> int:
    import asyncio

    from surveyhub.archive.engine import Limits
    from surveyhub.archive.server import serve

    refused: tuple[type[Exception], ...] = ()
    if args.hub:  # jupyterhub is imported only under the hub
        from surveyhub.archive.hub_identity import HubEnvironmentError

        refused = (HubEnvironmentError,)
        if args.tokens:
            print("surveyhub archive: --tokens is for the standalone service, not --hub", file=sys.stderr)
            return 2
    limits = Limits(max_radius_deg=args.max_radius, timeout_s=args.timeout)
    try:
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
                hub=args.hub,
            )
        )
    except refused as exc:
        print(f"surveyhub archive: {exc}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and documentation)."""
    parser = argparse.ArgumentParser(prog="surveyhub", description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("--version", action="version", version=f"surveyhub {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the platform on the embedded default")
    up.add_argument("--home", default=str(DEFAULT_HOME), help="state folder (default: %(default)s)")
    up.add_argument("--config", default=None, help="settings file (default: HOME/surveyhub.toml if present)")
    up.add_argument(
        "--demo-rows", type=int, default=DEMO_ROWS, help="spectra in the demo (default: %(default)s)"
    )
    up.add_argument("--no-hub", action="store_true", help="only build (or check) the release store")
    up.set_defaults(func=_cmd_up)

    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--home", default=str(DEFAULT_HOME), help="state folder (default: %(default)s)")
    where.add_argument(
        "--config", default=None, help="settings file (default: HOME/surveyhub.toml if present)"
    )
    where.add_argument("--hub-url", default=None, help="the hub's URL (default: from the settings)")
    team = sub.add_parser("team", help="manage teams (JupyterHub groups with a folder and a cloud prefix)")
    team_actions = team.add_subparsers(dest="action", required=True)
    create = team_actions.add_parser("create", help="make a team", parents=[where])
    create.add_argument("team")
    create.add_argument("--description", default="")
    for action, text in (("add", "add members"), ("remove", "remove members")):
        members = team_actions.add_parser(action, help=text, parents=[where])
        members.add_argument("team")
        members.add_argument("users", nargs="+")
    listing_teams = team_actions.add_parser("list", help="list teams and their members", parents=[where])
    listing_teams.add_argument("--all", action="store_true", help="every group, not only teams")
    team.set_defaults(func=_cmd_team)

    archive = sub.add_parser(
        "archive", help="run the archive service: standalone (development) or as a JupyterHub service"
    )
    archive.add_argument(
        "--hub",
        action="store_true",
        help="run as a JupyterHub-managed service: listen address, prefix and identities come from the "
        "hub (JUPYTERHUB_SERVICE_URL, JUPYTERHUB_SERVICE_PREFIX, JUPYTERHUB_API_TOKEN, ...); "
        "--port, --host and --base-url are then ignored",
    )
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
    archive.add_argument(
        "--db",
        default=os.environ.get("SURVEYHUB_ARCHIVE_DATABASE_URL") or None,
        help="platform database URL (default: $SURVEYHUB_ARCHIVE_DATABASE_URL, else SQLite in the cache)",
    )
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
