"""The artifact store: a local folder and S3 (a moto server over real HTTP), the same contract on both."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from s3_server import s3_client

from insiders.artifacts import (
    ArtifactError,
    LocalStore,
    S3Store,
    StoredObject,
    open_store,
    verify_sha256,
)
from insiders.errors import InsidersError

MODEL = b"\x80\x04joblib-model-bytes\x00" * 1000
MANIFEST = json.dumps({"model": "kmeans", "k": 5}).encode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def all_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# -- verify_sha256 --------------------------------------------------------------------------------------------


def test_verify_sha256_accepts_matching_bytes_in_any_case():
    verify_sha256(MODEL, sha(MODEL), "model.joblib")
    verify_sha256(MODEL, sha(MODEL).upper(), "model.joblib")


def test_verify_sha256_refuses_other_bytes_and_says_why():
    with pytest.raises(ArtifactError) as err:
        verify_sha256(MODEL + b"x", sha(MODEL), "s3://bucket/models/v1/model.joblib")
    message = str(err.value)
    assert "sha256 mismatch for s3://bucket/models/v1/model.joblib" in message
    assert f"expected {sha(MODEL)}, got {sha(MODEL + b'x')}" in message
    assert "refusing to load it" in message
    assert isinstance(err.value, InsidersError)  # the CLI prints it as a clean error


def test_verify_sha256_refuses_a_malformed_expected_digest():
    with pytest.raises(ArtifactError, match="not a 64-character hex digest"):
        verify_sha256(MODEL, "", "model.joblib")


# -- local store ----------------------------------------------------------------------------------------------


def test_local_round_trip(tmp_path: Path):
    store = LocalStore(tmp_path / "artifacts")
    stored = store.put("models/v1/model.joblib", MODEL)
    store.put("models/v1/manifest.json", MANIFEST, content_type="application/json")

    assert stored == StoredObject(
        uri=str(tmp_path / "artifacts" / "models" / "v1" / "model.joblib"),
        key="models/v1/model.joblib",
        size=len(MODEL),
        sha256=sha(MODEL),
        version_id=None,
    )
    assert store.get("models/v1/model.joblib") == MODEL
    assert store.exists("models/v1/manifest.json")
    assert not store.exists("models/v2/manifest.json")
    assert store.list() == ["models/v1/manifest.json", "models/v1/model.joblib"]
    assert store.list("models/v1/man") == ["models/v1/manifest.json"]
    assert store.list("models/v2/") == []
    assert store.uri == str(tmp_path / "artifacts")
    assert str(tmp_path / "artifacts") in store.describe()


def test_local_put_replaces_and_leaves_no_temporary_files(tmp_path: Path):
    store = LocalStore(tmp_path)
    store.put("m/model.joblib", b"first")
    store.put("m/model.joblib", b"second")
    assert store.get("m/model.joblib") == b"second"
    assert all_files(tmp_path) == ["m/model.joblib"]


def test_local_failed_write_keeps_the_previous_file_and_no_temporary_file(tmp_path, monkeypatch):
    store = LocalStore(tmp_path)
    store.put("m/model.joblib", b"good model")

    def crash(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(ArtifactError, match="No space left on device"):
        store.put("m/model.joblib", b"half-written model")
    monkeypatch.undo()

    assert store.get("m/model.joblib") == b"good model"
    assert all_files(tmp_path) == ["m/model.joblib"]


def test_local_listing_hides_writes_in_progress(tmp_path: Path):
    store = LocalStore(tmp_path)
    store.put("m/a", b"1")
    (tmp_path / "m" / ".insiders-tmp-b.0123abcd").write_bytes(b"partial")
    assert store.list() == ["m/a"]


@pytest.mark.parametrize("key", ["../outside", "/etc/passwd", "a/../../b", "a//b", "./a", "a\\..\\b", "", "a/.."])
def test_local_refuses_keys_that_could_escape_the_root(tmp_path: Path, key: str):
    store = LocalStore(tmp_path / "store")
    with pytest.raises(ArtifactError, match="invalid artifact key"):
        store.put(key, b"x")
    with pytest.raises(ArtifactError, match="invalid artifact key"):
        store.get(key)
    assert not (tmp_path / "outside").exists()
    assert all_files(tmp_path) == []


def test_local_refuses_a_symlink_out_of_the_root(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ArtifactError, match="resolves outside the store"):
        LocalStore(tmp_path / "store").put("link/model.joblib", b"x")
    assert list(outside.iterdir()) == []


def test_local_missing_key_is_a_clear_error(tmp_path: Path):
    store = LocalStore(tmp_path)
    store.put("m/a", b"1")
    for key in ("models/v9/model.joblib", "m", "m/a/b"):
        with pytest.raises(ArtifactError, match=r"not found in the local store") as err:
            store.get(key)
        assert repr(key) in str(err.value)


def test_local_store_does_not_pretend_to_keep_versions(tmp_path: Path):
    store = LocalStore(tmp_path)
    store.put("m/a", b"1")
    with pytest.raises(ArtifactError, match="does not keep versions"):
        store.get("m/a", version_id="abc")


def test_local_root_that_is_a_file_is_refused(tmp_path: Path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArtifactError, match="not a folder"):
        LocalStore(tmp_path / "file")


# -- S3 store, through the moto server ----------------------------------------------------------------------


def test_s3_round_trip(s3_bucket: str, s3_endpoint: str):
    store = S3Store(s3_bucket, "insiders/prod")
    stored = store.put("models/v1/model.joblib", MODEL)
    store.put("models/v1/manifest.json", MANIFEST, content_type="application/json")

    assert stored.uri == f"s3://{s3_bucket}/insiders/prod/models/v1/model.joblib"
    assert (stored.key, stored.size, stored.sha256) == ("models/v1/model.joblib", len(MODEL), sha(MODEL))
    assert stored.version_id  # the fixture's bucket is versioned
    data = store.get("models/v1/model.joblib")
    assert data == MODEL
    verify_sha256(data, stored.sha256, stored.uri)

    # The objects really are in the bucket, under the prefix, with their content type.
    client = s3_client(s3_endpoint)
    head = client.head_object(Bucket=s3_bucket, Key="insiders/prod/models/v1/manifest.json")
    assert head["ContentType"] == "application/json"
    client.put_object(Bucket=s3_bucket, Key="insiders/prodigal/other", Body=b"not ours")

    assert store.list() == ["models/v1/manifest.json", "models/v1/model.joblib"]
    assert store.list("models/v1/mo") == ["models/v1/model.joblib"]
    assert store.exists("models/v1/model.joblib")
    assert not store.exists("models/v2/model.joblib")
    assert store.uri == f"s3://{s3_bucket}/insiders/prod"
    assert s3_endpoint in store.describe()


def test_s3_versions_pin_the_exact_bytes(s3_bucket: str):
    store = S3Store(s3_bucket, "p")
    first = store.put("model.joblib", b"model one")
    second = store.put("model.joblib", b"model two")

    assert first.version_id and second.version_id and first.version_id != second.version_id
    assert store.get("model.joblib") == b"model two"
    assert store.get("model.joblib", version_id=first.version_id) == b"model one"
    assert store.get("model.joblib", version_id=second.version_id) == b"model two"


def test_s3_tampered_object_is_detected_by_its_sha256(s3_bucket: str, s3_endpoint: str):
    store = S3Store(s3_bucket, "p")
    stored = store.put("models/v1/model.joblib", MODEL)
    # Someone overwrites the model behind the store's back.
    s3_client(s3_endpoint).put_object(Bucket=s3_bucket, Key="p/models/v1/model.joblib", Body=b"malicious pickle")

    latest = store.get("models/v1/model.joblib")
    assert sha(latest) != stored.sha256
    with pytest.raises(ArtifactError, match=r"sha256 mismatch .* refusing to load it"):
        verify_sha256(latest, stored.sha256, stored.uri)
    # The pinned version still holds the recorded bytes.
    verify_sha256(store.get("models/v1/model.joblib", version_id=stored.version_id), stored.sha256, stored.uri)


def test_s3_missing_bucket_names_the_bucket(s3_endpoint: str):
    store = S3Store("insiders-no-such-bucket", "p")
    for operation in (
        lambda: store.get("model.joblib"),
        lambda: store.put("model.joblib", b"x"),
        lambda: store.exists("model.joblib"),
        lambda: store.list(),
    ):
        with pytest.raises(ArtifactError, match="bucket 'insiders-no-such-bucket' does not exist"):
            operation()


def test_s3_missing_key_and_version(s3_bucket: str):
    store = S3Store(s3_bucket, "p")
    with pytest.raises(ArtifactError, match=f"no object 'models/v9/model.joblib' in s3://{s3_bucket}/p"):
        store.get("models/v9/model.joblib")
    store.put("model.joblib", b"x")
    with pytest.raises(ArtifactError, match=r"no version 'nonexistent-version' of object 'model\.joblib'"):
        store.get("model.joblib", version_id="nonexistent-version")


def test_s3_refuses_keys_that_could_escape_the_prefix(s3_bucket: str):
    store = S3Store(s3_bucket, "p")
    for key in ("../other/model.joblib", "/model.joblib", "a//b"):
        with pytest.raises(ArtifactError, match="invalid artifact key"):
            store.put(key, b"x")
    assert store.list() == []


def test_s3_access_denied_says_which_permission(s3_bucket: str, s3_endpoint: str):
    store = S3Store(s3_bucket, "p")
    store.put("model.joblib", MODEL)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{s3_bucket}/*"}
        ],
    }
    s3_client(s3_endpoint).put_bucket_policy(Bucket=s3_bucket, Policy=json.dumps(policy))
    with pytest.raises(ArtifactError) as err:
        store.get("model.joblib")
    message = str(err.value)
    assert f"access denied to s3://{s3_bucket}/p/model.joblib" in message
    assert "s3:GetObject" in message


def test_s3_unreachable_endpoint_fails_within_seconds(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("INSIDERS_S3_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    store = S3Store("insiders-bucket", "p")
    started = time.monotonic()
    with pytest.raises(ArtifactError, match=r"cannot reach the S3 endpoint http://127\.0\.0\.1:9"):
        store.get("model.joblib")
    assert time.monotonic() - started < 10


def test_s3_without_credentials_says_so(monkeypatch, tmp_path: Path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("INSIDERS_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(ArtifactError, match=r"no AWS credentials found \(set AWS_ACCESS_KEY_ID"):
        S3Store("insiders-bucket", "p").put("model.joblib", b"x")


def test_s3_messages_never_show_the_secret_key(s3_endpoint: str, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-value")
    with pytest.raises(ArtifactError) as err:
        S3Store("insiders-no-such-bucket").get("model.joblib")
    assert "testing-secret-value" not in str(err.value)


# -- open_store -----------------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INSIDERS_PROJECT_DIR", str(tmp_path))
    monkeypatch.delenv("INSIDERS_ARTIFACT_URI", raising=False)
    return tmp_path


def test_open_store_defaults_to_artifacts_in_the_project(project: Path):
    store = open_store()
    assert isinstance(store, LocalStore)
    assert store.uri == str(project / "artifacts")


def test_open_store_reads_the_environment(project: Path, monkeypatch):
    monkeypatch.setenv("INSIDERS_ARTIFACT_URI", "s3://insiders-models/prod")
    store = open_store()
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix, store.uri) == ("insiders-models", "prod", "s3://insiders-models/prod")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("models", "models"),
        ("build/artifacts/", "build/artifacts"),
    ],
)
def test_open_store_relative_paths_are_relative_to_the_project(project: Path, uri: str, expected: str):
    store = open_store(uri)
    assert isinstance(store, LocalStore)
    assert store.uri == str(project / expected)


def test_open_store_absolute_paths_and_file_uris(project: Path, tmp_path: Path):
    target = tmp_path / "elsewhere with space"
    assert open_store(str(target)).uri == str(target)
    assert open_store(target.as_uri()).uri == str(target)
    assert open_store(f"file://localhost{target}").uri == str(target)


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix"),
    [
        ("s3://insiders-models", "insiders-models", ""),
        ("s3://insiders-models/", "insiders-models", ""),
        ("s3://insiders-models/a/b/", "insiders-models", "a/b"),
    ],
)
def test_open_store_s3_uris(project: Path, uri: str, bucket: str, prefix: str):
    store = open_store(uri)
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix) == (bucket, prefix)


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("s3://", "no bucket name"),
        ("s3:///models", "no bucket name"),
        ("s3:bucket/models", "starts with s3://"),
        ("s3://Bad_Bucket/models", "not a valid bucket name"),
        ("s3://insiders-models/a/../b", "not a clean relative path"),
        ("gs://insiders-models/prod", "unsupported scheme 'gs://'"),
        ("https://example.com/models", "unsupported scheme 'https://'"),
        ("file://server/share", "absolute folder"),
        ("", "empty artifact store URI"),
    ],
)
def test_open_store_refuses_malformed_uris(project: Path, uri: str, reason: str):
    with pytest.raises(ArtifactError) as err:
        open_store(uri)
    assert reason in str(err.value)
    assert "s3://bucket[/prefix]" in str(err.value)  # names the supported forms


def test_open_store_does_not_repeat_credentials_in_a_uri(project: Path):
    with pytest.raises(ArtifactError) as err:
        open_store("s3://AKIAEXAMPLE:secret@insiders-models/prod")
    assert "secret" not in str(err.value) and "AKIAEXAMPLE" not in str(err.value)


@pytest.mark.parametrize("uri", ["models", "s3://insiders-models", "s3://insiders-models/prod/eu"])
def test_a_store_uri_reopens_the_same_store(project: Path, uri: str):
    store = open_store(uri)
    assert open_store(store.uri).uri == store.uri
