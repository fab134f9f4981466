"""A real S3 API server for tests: moto's server in its own process, as s3fs's own tests run it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import requests
from botocore.exceptions import ClientError

from surveyhub.hub.credentials import IAMUserBroker, make_broker
from surveyhub.hub.settings import CloudSettings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def moto_server(env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Start ``moto.server`` on a free loopback port; yields its endpoint URL.

    ``env`` adds to the server's environment, e.g. ``INITIAL_NO_AUTH_ACTION_COUNT`` to enforce IAM.
    """
    port = _free_port()
    env = os.environ | {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"} | dict(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(endpoint, timeout=1)
                break
            except requests.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def s3_options(endpoint: str) -> dict:
    """fsspec/s3fs storage options for the moto endpoint."""
    return {"key": "test", "secret": "test", "client_kwargs": {"endpoint_url": endpoint}}


REGION = "us-east-1"
BUCKET = "cloud"
#: moto_server's readiness probe (GET /) is an S3 ListBuckets, and moto counts it as an action.
PROBE_ACTIONS = 1
#: create_user, put_user_policy and create_access_key for the admin; everything after them is checked.
BOOTSTRAP_ACTIONS = 3
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@dataclass(frozen=True)
class IAMServer:
    """A moto server that enforces IAM, and the client kwargs of its admin user."""

    endpoint: str
    admin: dict[str, str]

    def client(self, service: str) -> Any:
        """A boto3 client with the admin's key."""
        return boto3.client(service, **self.admin)

    def cloud(self, **credentials: Any) -> CloudSettings:
        """Cloud settings for users' and teams' prefixes in the ``cloud`` bucket."""
        return CloudSettings(
            user_url=f"s3://{BUCKET}/users/{{username}}/",
            team_url=f"s3://{BUCKET}/teams/{{team}}/",
            s3_endpoint=self.endpoint,
            credentials=credentials,
        )

    def iam_broker(self) -> IAMUserBroker:
        """The IAM-user broker with the admin's key."""
        broker = make_broker(
            self.cloud(
                kind="iam-user",
                access_key_id=self.admin["aws_access_key_id"],
                secret_access_key=self.admin["aws_secret_access_key"],
            )
        )
        assert isinstance(broker, IAMUserBroker)
        return broker


@contextmanager
def iam_enforcing_server() -> Iterator[IAMServer]:
    """moto, checking signatures and IAM policies after the admin's bootstrap; the ``cloud`` bucket made.

    moto checks IAM only after ``INITIAL_NO_AUTH_ACTION_COUNT`` unauthenticated actions, so exactly the
    bootstrap (an admin user, its policy, its key) goes through unchecked, and enforcement is proven on
    before anything relies on it.
    """
    env = {"INITIAL_NO_AUTH_ACTION_COUNT": str(PROBE_ACTIONS + BOOTSTRAP_ACTIONS)}
    with moto_server(env=env) as endpoint:
        anonymous = {
            "endpoint_url": endpoint,
            "region_name": REGION,
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
        }
        iam = boto3.client("iam", **anonymous)
        iam.create_user(UserName="admin")
        iam.put_user_policy(UserName="admin", PolicyName="admin", PolicyDocument=json.dumps(ADMIN_POLICY))
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        admin = anonymous | {
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
        }
        try:
            iam.list_users()
            enforced = False
        except ClientError as exc:
            enforced = "InvalidClientTokenId" in str(exc)
        if not enforced:
            raise AssertionError("moto is not enforcing IAM: the isolation tests would prove nothing")
        boto3.client("s3", **admin).create_bucket(Bucket=BUCKET)
        yield IAMServer(endpoint, admin)
