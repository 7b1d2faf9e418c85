"""An S3 server for tests: moto in server mode on the loopback interface.

The code under test makes real HTTP calls with boto3, exactly as against AWS; only the endpoint differs
(``INSIDERS_S3_ENDPOINT_URL``). Credentials are fake and scoped to the test session. If the server cannot
start, the tests that need it fail: a broken S3 setup must not pass as skipped tests.

The fixtures are named ``s3_endpoint`` and ``s3_bucket``; their functions carry a ``_fixture`` suffix so that a
module importing them does not shadow the import with each test's argument of the same name.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator

import pytest

START_TIMEOUT_S = 30
REGION = "us-east-1"


def s3_client(endpoint: str):
    """A boto3 S3 client for the test server (test code only: it manipulates buckets behind the store's back)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="session", name="s3_endpoint")
def s3_endpoint_fixture() -> Iterator[str]:
    """Start moto's S3 server on 127.0.0.1 (a free port), point the environment at it, yield its URL."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # moto[server] is a dev dependency
        pytest.fail(f"cannot import moto's server mode (install the dev extras, moto[server]): {exc}")

    # Port 0: the operating system picks a free port, with no race between choosing and binding it.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    failure: list[BaseException] = []

    def start() -> None:
        try:
            server.start()
        except BaseException as exc:
            failure.append(exc)

    # ThreadedMotoServer.start() waits without a timeout for a server that may never come up: bound the wait.
    starter = threading.Thread(target=start, daemon=True)
    starter.start()
    starter.join(START_TIMEOUT_S)
    if starter.is_alive() or failure:
        reason = repr(failure[0]) if failure else f"not ready after {START_TIMEOUT_S} s"
        pytest.fail(f"cannot start the moto S3 server on 127.0.0.1: {reason}")
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"

    werkzeug_log = logging.getLogger("werkzeug")
    previous_level = werkzeug_log.level
    werkzeug_log.setLevel(logging.WARNING)  # one log line per request otherwise
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
                mp.delenv(name, raising=False)
            mp.setenv("AWS_ACCESS_KEY_ID", "testing")
            mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
            mp.setenv("AWS_DEFAULT_REGION", REGION)
            mp.setenv("INSIDERS_S3_ENDPOINT_URL", endpoint)
            try:
                s3_client(endpoint).list_buckets()
            except Exception as exc:
                pytest.fail(f"the moto S3 server at {endpoint} does not answer: {exc}")
            yield endpoint
    finally:
        werkzeug_log.setLevel(previous_level)
        server.stop()


@pytest.fixture(name="s3_bucket")
def s3_bucket_fixture(s3_endpoint: str) -> Iterator[str]:
    """A new, empty, versioned bucket for one test; emptied and deleted afterwards."""
    client = s3_client(s3_endpoint)
    name = f"insiders-test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    try:
        yield name
    finally:
        client.delete_bucket_policy(Bucket=name)
        for page in client.get_paginator("list_object_versions").paginate(Bucket=name):
            doomed = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            if doomed:
                client.delete_objects(Bucket=name, Delete={"Objects": doomed})
        client.delete_bucket(Bucket=name)
