"""S3 credentials for each user's server that reach only that user's prefix and their teams' prefixes.

With cloud space on S3 (``cloud.user_url = "s3://cloud/users/{username}/"``), every Jupyter server needs
S3 credentials, and handing out one shared key would let any user read every other user's files. So the
hub asks a *credential broker* for credentials scoped, by an IAM policy, to exactly the prefixes that
:func:`prefixes_for` derives from the URL templates: the user's own and one per team. The policy is the
same for every kind of storage (:func:`policy_document`); brokers differ only in how they attach it:

``kind = "iam-user"`` (:class:`IAMUserBroker`)
    one IAM user per hub user, holding the policy inline and one live access key. For S3-compatible
    storage with an IAM API but no STS (Ceph RGW, moto). Keys do not expire, so the hub revokes them
    when the server stops.
``kind = "sts"`` (:class:`STSAssumeRoleBroker`)
    ``AssumeRole`` with the policy as a *session policy*: temporary credentials that expire by
    themselves. The preferred kind on AWS; MinIO and Ceph RGW accept the same call. The role must grant
    at least the whole cloud bucket: a session policy can only narrow what the role allows.

Keys of ``[cloud.credentials]`` (unknown keys are refused by name, as everywhere in the settings):

=====================  ========  =============================================================================
key                    kind      meaning (default)
=====================  ========  =============================================================================
``kind``               both      ``iam-user`` or ``sts`` (required for s3:// cloud space)
``region``             both      the region credentials are issued for and servers use (``us-east-1``)
``access_key_id``      both      the hub's own key: required for ``iam-user``; for ``sts`` optional, and
``secret_access_key``            without it boto3's chain is used (environment, IRSA, instance profile)
``iam_endpoint``       iam-user  the IAM API (``cloud.s3_endpoint``, else AWS's own)
``user_prefix``        iam-user  IAM user of hub user ``alice``: ``<user_prefix>alice`` (``surveyhub-``)
``role_arn``           sts       the role to assume (required)
``duration_s``         sts       lifetime of the credentials, 900 to 43200 s (3600)
``sts_endpoint``       sts       the STS API (``cloud.s3_endpoint``, else AWS's own)
=====================  ========  =============================================================================

>>> cloud = CloudSettings(user_url="s3://cloud/users/{username}/", team_url="s3://cloud/teams/{team}/")
>>> prefixes_for(cloud, "alice", ["astro"])
[('cloud', 'users/alice/'), ('cloud', 'teams/astro/')]
>>> policy_document([("cloud", "users/alice/")])["Statement"][1]["Resource"]
['arn:aws:s3:::cloud/users/alice/*']
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from surveyhub.hub.settings import CloudSettings

#: Builds a boto3 client: ``factory(service_name, **client_kwargs)``, like ``boto3.session.Session().client``.
ClientFactory = Callable[..., Any]

#: The name of the inline policy on each broker-managed IAM user; replaced on every issue.
POLICY_NAME = "surveyhub-cloud"
DEFAULT_REGION = "us-east-1"
DEFAULT_USER_PREFIX = "surveyhub-"
SESSION_PREFIX = "surveyhub-"
DEFAULT_DURATION_S = 3600
#: AssumeRole's bounds on DurationSeconds (the role's own maximum may be lower; AWS then refuses).
MIN_DURATION_S, MAX_DURATION_S = 900, 43200

#: Object-level actions a user needs on their prefixes: read, write, delete, and the multipart upload calls
#: that s3fs makes for large files. No bucket-level or account-level action is in the list on purpose.
OBJECT_ACTIONS = (
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
)

#: Characters IAM allows in user names and STS in session names.
_IAM_NAME = re.compile(r"[\w+=,.@-]+", re.ASCII)
_IAM_NAME_MAX = 64
#: Characters that would make a name widen a policy (IAM wildcards, policy variables) or change the key
#: hierarchy (``/``); a user called ``*`` must not get ``users/*``.
_UNSAFE_IN_NAME = re.compile(r"[*?$/\\\x00-\x1f\x7f]")

_COMMON_KEYS = frozenset({"kind", "region", "access_key_id", "secret_access_key"})
_IAM_KEYS = _COMMON_KEYS | {"iam_endpoint", "user_prefix"}
_STS_KEYS = _COMMON_KEYS | {"role_arn", "duration_s", "sts_endpoint"}


@dataclass(frozen=True)
class StorageCredentials:
    """Credentials for one user's server, in the two shapes a server consumes them.

    Secrets are left out of ``repr`` so that logging a credentials object cannot leak them.
    """

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)  # None for IAM users' long-lived keys
    expiration: datetime | None = None  # aware; None when the key does not expire
    endpoint_url: str | None = None  # None: AWS's own endpoints
    region: str = DEFAULT_REGION

    def storage_options(self) -> dict[str, Any]:
        """fsspec/s3fs keyword arguments: ``s3fs.S3FileSystem(**creds.storage_options())``."""
        return {
            "key": self.access_key_id,
            "secret": self.secret_access_key,
            "token": self.session_token,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": self.region},
        }

    def environment(self) -> dict[str, str]:
        """The standard AWS variables, for the server's environment: boto3, s3fs, the AWS CLI and
        Dask workers started from the server all read them without surveyhub-specific code."""
        env = {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
        }
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        if self.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.endpoint_url
        return env


def _template_location(template: str, setting: str, placeholder: str) -> tuple[str, str]:
    """Split an s3:// template into bucket and key template, refusing what a policy cannot confine.

    The bucket must be fixed: policies here name buckets literally, and a per-user bucket would need
    bucket creation rights that no user should hold.
    """
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    if fields != {placeholder}:
        raise ValueError(f"{setting} {template!r} must use exactly the placeholder {{{placeholder}}}")
    parts = urlsplit(template)
    if parts.scheme != "s3":
        raise ValueError(f"{setting} {template!r} is not an s3:// URL: S3 credentials cannot reach it")
    bucket, _, key = template[len("s3://") :].partition("/")
    if not bucket or "{" in bucket or "}" in bucket:
        raise ValueError(f"{setting} {template!r}: the bucket must not depend on the {placeholder}")
    return bucket, key


def _safe_name(name: str, what: str) -> str:
    if not name or name in {".", ".."} or _UNSAFE_IN_NAME.search(name):
        raise ValueError(f"{what} {name!r} cannot name an S3 prefix (empty, or has one of * ? $ / \\)")
    return name


def _prefix(bucket: str, key_template: str, placeholder: str, name: str) -> tuple[str, str]:
    key = key_template.format(**{placeholder: name})
    return bucket, key if key.endswith("/") else key + "/"


def prefixes_for(cloud: CloudSettings, username: str, teams: Iterable[str]) -> list[tuple[str, str]]:
    """``(bucket, key prefix)`` of the user's space, then of each team's, each prefix ending in ``/``.

    The trailing ``/`` matters: without it ``users/al`` would also grant ``users/alice/``. Names that would
    act as wildcards in a policy are refused rather than escaped, since IAM has no escaping for ``*``.
    """
    user_bucket, user_key = _template_location(cloud.user_url, "cloud.user_url", "username")
    team_bucket, team_key = _template_location(cloud.team_url, "cloud.team_url", "team")
    found = [_prefix(user_bucket, user_key, "username", _safe_name(username, "user name"))]
    for team in teams:
        prefix = _prefix(team_bucket, team_key, "team", _safe_name(team, "team name"))
        if prefix not in found:
            found.append(prefix)
    return found


def policy_document(prefixes: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The least-privilege IAM policy for these ``(bucket, prefix)`` pairs.

    Listing is a bucket-level action, so it is granted per bucket and narrowed by the ``s3:prefix``
    condition (the prefix itself, for listing the folder, and anything below it); objects are granted
    only under each prefix. Nothing else: no ListAllMyBuckets, no bucket policy or ACL changes.
    """
    by_bucket: dict[str, list[str]] = {}
    for bucket, prefix in prefixes:
        if not prefix.endswith("/") or "*" in prefix or "?" in prefix or "$" in prefix:
            raise ValueError(f"prefix {prefix!r} must end in / and contain no * ? $")
        by_bucket.setdefault(bucket, [])
        if prefix not in by_bucket[bucket]:
            by_bucket[bucket].append(prefix)
    if not by_bucket:
        raise ValueError("a policy needs at least one prefix")
    statements: list[dict[str, Any]] = [
        {
            "Sid": f"List{index}",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": f"arn:aws:s3:::{bucket}",
            "Condition": {
                "StringLike": {"s3:prefix": [p for prefix in keys for p in (prefix, prefix + "*")]}
            },
        }
        for index, (bucket, keys) in enumerate(by_bucket.items())
    ]
    statements.append(
        {
            "Sid": "Objects",
            "Effect": "Allow",
            "Action": list(OBJECT_ACTIONS),
            "Resource": [
                f"arn:aws:s3:::{bucket}/{prefix}*" for bucket, keys in by_bucket.items() for prefix in keys
            ],
        }
    )
    return {"Version": "2012-10-17", "Statement": statements}


def _policy_json(prefixes: Sequence[tuple[str, str]]) -> str:
    # Compact: inline user policies and session policies are limited to about 2 KB of JSON.
    return json.dumps(policy_document(prefixes), separators=(",", ":"))


@runtime_checkable
class CredentialBroker(Protocol):
    """What the spawner needs from a broker: credentials at spawn, revocation at stop."""

    async def issue(self, username: str, teams: Sequence[str]) -> StorageCredentials:
        """Credentials reaching exactly ``username``'s prefix and those of ``teams``, as of now."""
        ...

    async def revoke(self, username: str) -> None:
        """Make the credentials issued to ``username`` stop working, where the storage allows it."""
        ...


def _default_client_factory(service: str, **kwargs: Any) -> Any:
    # boto3 is imported here, not at module level, so that hubs with local cloud space never load it.
    import boto3

    return boto3.session.Session().client(service, **kwargs)


def _client_config() -> Any:
    from botocore.config import Config

    # Bounded timeouts and standard retries: a spawn must fail in seconds, not hang, if IAM/STS is down.
    return Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"})


def _client(
    factory: ClientFactory | None, service: str, endpoint: str | None, region: str, key: dict[str, Any]
) -> Any:
    """A boto3 client of ``service`` for the broker (bounded timeouts, the hub's own key if given)."""
    return (factory or _default_client_factory)(
        service, endpoint_url=endpoint, region_name=region, config=_client_config(), **key
    )


def _checked_keys(credentials: dict[str, Any], allowed: frozenset[str], kind: str) -> None:
    unknown = sorted(set(credentials) - allowed)
    if unknown:
        raise ValueError(f"cloud.credentials: unknown key {unknown[0]} for kind {kind!r}")


def _hub_key(credentials: dict[str, Any], required: bool, kind: str) -> dict[str, str]:
    """The hub's own access key as boto3 client kwargs; both halves or neither."""
    key, secret = credentials.get("access_key_id"), credentials.get("secret_access_key")
    for name, value in (("access_key_id", key), ("secret_access_key", secret)):
        if not value and (required or key or secret):
            raise ValueError(f"cloud.credentials.{name} is required for kind {kind!r}")
    return {"aws_access_key_id": str(key), "aws_secret_access_key": str(secret)} if key else {}


class IAMUserBroker:
    """One IAM user per hub user, with the cloud policy inline and a single live access key.

    Each issue replaces the policy (teams change between spawns) and the key (so a key copied out of an
    earlier server stops working at the next spawn, and IAM's limit of two keys per user is never hit).
    This means one server per user at a time: a second concurrent server would invalidate the first's key.
    On AWS a new key may take a few seconds to be accepted; prefer ``sts`` there.
    """

    def __init__(self, cloud: CloudSettings, *, client_factory: ClientFactory | None = None) -> None:
        creds = cloud.credentials
        _checked_keys(creds, _IAM_KEYS, "iam-user")
        hub_key = _hub_key(creds, required=True, kind="iam-user")
        prefixes_for(cloud, "probe", ["probe"])  # refuse bad templates at hub start, not at first spawn
        self.cloud = cloud
        self.region: str = creds.get("region") or DEFAULT_REGION
        self.user_prefix: str = creds.get("user_prefix", DEFAULT_USER_PREFIX)
        self.endpoint_url: str | None = cloud.s3_endpoint or None
        #: The IAM client; public so that operators' hooks and tests can reach its event system.
        self.iam: Any = _client(
            client_factory, "iam", creds.get("iam_endpoint") or self.endpoint_url, self.region, hub_key
        )

    def iam_user_name(self, username: str) -> str:
        """The IAM user of a hub user; refused (not sanitised) when IAM cannot name it as is, because
        sanitising could map two hub users onto one IAM user."""
        name = self.user_prefix + username
        if not _IAM_NAME.fullmatch(name) or len(name) > _IAM_NAME_MAX:
            raise ValueError(
                f"IAM user name {name!r} for user {username!r}: IAM allows letters, digits and +=,.@_- only, "
                f"{_IAM_NAME_MAX} characters at most"
            )
        return name

    async def issue(self, username: str, teams: Sequence[str]) -> StorageCredentials:
        """Create the IAM user if needed, put the policy for these teams, and return a fresh key."""
        name = self.iam_user_name(username)
        policy = _policy_json(prefixes_for(self.cloud, username, teams))
        return await asyncio.to_thread(self._issue, name, username, policy)

    def _issue(self, name: str, username: str, policy: str) -> StorageCredentials:
        iam = self.iam
        # Already there from an earlier spawn (or a concurrent one): both are fine.
        with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
            iam.create_user(UserName=name, Tags=[{"Key": "surveyhub:username", "Value": username}])
        iam.put_user_policy(UserName=name, PolicyName=POLICY_NAME, PolicyDocument=policy)
        self._delete_keys(name)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return StorageCredentials(
            access_key_id=key["AccessKeyId"],
            secret_access_key=key["SecretAccessKey"],
            endpoint_url=self.endpoint_url,
            region=self.region,
        )

    def _delete_keys(self, name: str) -> None:
        for old in self.iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
            self.iam.delete_access_key(UserName=name, AccessKeyId=old["AccessKeyId"])

    async def revoke(self, username: str) -> None:
        """Delete the user's keys and policy; the IAM user stays (it grants nothing without them)."""
        await asyncio.to_thread(self._revoke, self.iam_user_name(username))

    def _revoke(self, name: str) -> None:
        iam = self.iam
        try:
            self._delete_keys(name)
        except iam.exceptions.NoSuchEntityException:
            return  # never issued: nothing to revoke
        with contextlib.suppress(iam.exceptions.NoSuchEntityException):
            iam.delete_user_policy(UserName=name, PolicyName=POLICY_NAME)


def session_name_for(username: str) -> str:
    """STS session name ``surveyhub-<username>``, sanitised to STS's characters and 64-character limit.

    Unlike IAM user names, sanitising is safe here: the session name only labels the session in audit
    logs (CloudTrail), while what it may reach comes from the session policy.
    """
    name = SESSION_PREFIX + re.sub(r"[^\w+=,.@-]", "-", username, flags=re.ASCII)
    return name[:_IAM_NAME_MAX]


class STSAssumeRoleBroker:
    """Temporary credentials from ``AssumeRole`` with the user's policy as a session policy.

    The credentials are the intersection of the role's permissions and the session policy, and expire
    after ``duration_s``; nothing is stored per user, so there is nothing to clean up.
    """

    def __init__(self, cloud: CloudSettings, *, client_factory: ClientFactory | None = None) -> None:
        creds = cloud.credentials
        _checked_keys(creds, _STS_KEYS, "sts")
        hub_key = _hub_key(creds, required=False, kind="sts")
        if not creds.get("role_arn"):
            raise ValueError("cloud.credentials.role_arn is required for kind 'sts'")
        duration = creds.get("duration_s", DEFAULT_DURATION_S)
        if not isinstance(duration, int) or not MIN_DURATION_S <= duration <= MAX_DURATION_S:
            raise ValueError(
                f"cloud.credentials.duration_s {duration!r}: STS takes {MIN_DURATION_S} to {MAX_DURATION_S} s"
            )
        prefixes_for(cloud, "probe", ["probe"])  # refuse bad templates at hub start, not at first spawn
        self.cloud = cloud
        self.role_arn: str = str(creds["role_arn"])
        self.duration_s: int = duration
        self.region: str = creds.get("region") or DEFAULT_REGION
        self.endpoint_url: str | None = cloud.s3_endpoint or None
        #: The STS client; public so that operators' hooks and tests can reach its event system.
        self.sts: Any = _client(
            client_factory, "sts", creds.get("sts_endpoint") or self.endpoint_url, self.region, hub_key
        )

    async def issue(self, username: str, teams: Sequence[str]) -> StorageCredentials:
        """Assume the role for this user, narrowed to their prefixes."""
        policy = _policy_json(prefixes_for(self.cloud, username, teams))
        response = await asyncio.to_thread(
            self.sts.assume_role,
            RoleArn=self.role_arn,
            RoleSessionName=session_name_for(username),
            Policy=policy,
            DurationSeconds=self.duration_s,
        )
        creds = response["Credentials"]
        return StorageCredentials(
            access_key_id=creds["AccessKeyId"],
            secret_access_key=creds["SecretAccessKey"],
            session_token=creds["SessionToken"],
            expiration=creds["Expiration"].astimezone(UTC),
            endpoint_url=self.endpoint_url,
            region=self.region,
        )

    async def revoke(self, username: str) -> None:
        """Nothing to do: STS cannot revoke one session's credentials; they expire after ``duration_s``.

        (AWS's "revoke active sessions" denies every session of the role issued before a time, which
        would cut off every other user too.)
        """


def make_broker(
    cloud: CloudSettings, *, client_factory: ClientFactory | None = None
) -> CredentialBroker | None:
    """The broker the settings ask for, or None when cloud space is not on S3 and needs no credentials.

    Settings errors surface here, when the hub starts, instead of at the first user's spawn.
    """
    if urlsplit(cloud.user_url).scheme != "s3":
        return None
    kind = cloud.credentials.get("kind")
    if not kind:
        raise ValueError("cloud.credentials.kind is required for s3:// cloud space: use iam-user or sts")
    if kind == "iam-user":
        return IAMUserBroker(cloud, client_factory=client_factory)
    if kind == "sts":
        return STSAssumeRoleBroker(cloud, client_factory=client_factory)
    raise ValueError(f"cloud.credentials.kind {kind!r}: use iam-user or sts")
