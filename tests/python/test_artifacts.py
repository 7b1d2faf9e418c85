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


# -- the pin authenticates the manifest; names from the store never reach SQL unvalidated --------------------

TRUST_FEATURES = ("gross_revenue", "recency_days", "qty_invoices")
HOSTILE_FEATURE = "recency_days from customer_features; drop table sentinel; --"


def _features_frame(n: int = 300):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(5)
    big = rng.random(n) < 0.15
    return pd.DataFrame(
        {
            "customer_id": np.arange(1, n + 1, dtype=np.int64),
            "gross_revenue": np.where(big, rng.lognormal(9, 0.4, n), rng.lognormal(5, 0.6, n)).round(2),
            "recency_days": rng.integers(0, 370, n).astype(np.int64),
            "qty_invoices": np.where(big, rng.integers(20, 60, n), rng.integers(1, 8, n)).astype(np.int64),
        }
    )


@pytest.fixture
def pinned_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A pin file of the test's own; no environment override of the pin."""
    path = tmp_path / "pinned_model.yml"
    monkeypatch.setenv("INSIDERS_PIN_FILE", str(path))
    for name in ("INSIDERS_MODEL_VERSION", "INSIDERS_MODEL_SHA256", "INSIDERS_MODEL_MANIFEST_SHA256"):
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.fixture
def promoted(target, tmp_path: Path, pinned_env: Path):
    """A warehouse with customer_features and a sentinel table, and a small model trained on it and pinned."""
    import pyarrow as pa

    from insiders.model import ModelConfig
    from insiders.training import train
    from insiders.warehouse import connect

    store = LocalStore(tmp_path / "artifacts")
    frame = _features_frame()
    schema = target.schema
    with connect(target) as wh, wh.transaction():
        wh.execute(f"create schema if not exists {schema}")
        wh.execute(
            f"create table {schema}.customer_features (customer_id bigint not null, gross_revenue double precision,"
            " recency_days bigint, qty_invoices bigint)"
        )
        wh.append_arrow(f"{schema}.customer_features", pa.Table.from_pandas(frame, preserve_index=False))
        wh.execute(f"create table {schema}.sentinel (x integer)")
    config = ModelConfig(
        features=TRUST_FEATURES, k=3, n_components=2, n_estimators=20, n_init=2, selection_seeds=1, selection_samples=1
    )
    with connect(target) as wh:
        outcome = train(wh, store, schema, config, promote=True)
    return target, store, outcome.saved.version


def _tamper(store: LocalStore, version: str) -> bytes:
    """Rewrite the stored manifest so that a feature name carries SQL; return the new bytes."""
    key = f"models/{version}/manifest.json"
    manifest = json.loads(store.get(key))
    manifest["features"] = [HOSTILE_FEATURE if f == "recency_days" else f for f in manifest["features"]]
    manifest["feature_types"] = {
        (HOSTILE_FEATURE if f == "recency_days" else f): t for f, t in manifest["feature_types"].items()
    }
    data = json.dumps(manifest, indent=2).encode()
    store.put(key, data)
    return data


def _sentinel_exists(target) -> bool:
    from insiders.warehouse import connect

    with connect(target) as wh:
        return wh.relation_exists(target.schema, "sentinel")


def test_the_pin_records_the_manifest_digest(promoted, pinned_env: Path) -> None:
    from insiders.registry import load_pinned, read_pin

    _, store, version = promoted
    pin = read_pin()
    assert pin.manifest_sha256 == sha(store.get(f"models/{version}/manifest.json"))
    assert "manifest_sha256: " + pin.manifest_sha256 in pinned_env.read_text()
    assert load_pinned(store).manifest["model_version"] == version


def test_a_manifest_with_sql_in_a_feature_name_is_refused(promoted, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing one string into manifest.json must not run SQL: the digest check refuses it, and so does the
    identifier check when the digest is (wrongly) re-pinned; scoring never starts and the sentinel survives."""
    from conftest import run_cli

    from insiders.registry import load_pinned, pin_file
    from insiders.scoring import score
    from insiders.warehouse import connect

    target, store, version = promoted
    tampered = _tamper(store, version)

    # 1. The pin holds the manifest's digest: a changed manifest is refused before it is parsed.
    with pytest.raises(ArtifactError, match=r"sha256 mismatch for the manifest of model version"):
        load_pinned(store)
    monkeypatch.setenv("INSIDERS_ARTIFACT_URI", store.uri)
    proc = run_cli("score", "--target", target.name, check=False)
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: sha256 mismatch for the manifest")
    assert "Traceback" not in proc.stderr

    # 2. Even an operator who re-pins the tampered manifest's digest gets a refusal naming the bad name.
    monkeypatch.setenv("INSIDERS_MODEL_MANIFEST_SHA256", sha(tampered))
    with pytest.raises(ArtifactError, match=r"is refused: feature or column name .* is not a valid SQL identifier"):
        loaded = load_pinned(store)
        with connect(target) as wh:  # only reached if the refusal is missing
            score(wh, loaded, target.schema)
    monkeypatch.delenv("INSIDERS_MODEL_MANIFEST_SHA256")

    # 3. `insiders promote` refuses to pin it, and leaves the pin as it was.
    before = pin_file().read_text()
    proc = run_cli("promote", version, check=False)
    assert proc.returncode == 4 and "is not a valid SQL identifier" in proc.stderr, proc.stderr
    assert pin_file().read_text() == before

    assert _sentinel_exists(target), "the SQL in the manifest must never run"
    with connect(target) as wh:
        assert not wh.relation_exists(target.schema, "customer_segments"), "nothing was scored"


def test_a_pin_without_a_manifest_digest_is_refused_with_the_fix(promoted, pinned_env: Path) -> None:
    import yaml

    from insiders.registry import load_pinned

    _, store, version = promoted
    document = yaml.safe_load(pinned_env.read_text())
    del document["model"]["manifest_sha256"]
    pinned_env.write_text(yaml.safe_dump(document))
    with pytest.raises(ArtifactError, match=rf"has no manifest_sha256 .*insiders promote {version}"):
        load_pinned(store)


def test_a_manifest_whose_features_differ_from_the_model_is_refused(promoted, pinned_env: Path) -> None:
    """A consistent-looking manifest (valid names, re-pinned digest) that lists other features than the model
    was trained on is refused before scoring, instead of failing with a KeyError inside it."""
    from insiders.registry import load_pinned, pin_version

    _, store, version = promoted
    key = f"models/{version}/manifest.json"
    manifest = json.loads(store.get(key))
    manifest["features"] = ["gross_revenue", "qty_invoices"]
    manifest["feature_types"] = {f: manifest["feature_types"][f] for f in manifest["features"]}
    store.put(key, json.dumps(manifest).encode())
    pin_version(store, version)
    with pytest.raises(ArtifactError, match=r"trained on features .* but its manifest lists"):
        load_pinned(store)


@pytest.mark.parametrize(
    "name",
    ["", "1abc", "a b", 'x"; drop table t; --', "Raw", "a.b", "a-b", "é", "x" * 64, "raw\n", None, ["raw"]],
)
def test_identifiers_are_validated_before_they_reach_sql(name) -> None:
    from insiders.warehouse import IdentifierError, quote_identifier, validate_identifier

    with pytest.raises(IdentifierError, match="schema name"):
        validate_identifier(name, "schema name")
    with pytest.raises(IdentifierError):
        quote_identifier(name)


def test_valid_identifiers_are_quoted_by_the_adapter(target) -> None:
    from insiders.warehouse import connect, validate_identifier

    assert validate_identifier("_raw_2", "schema") == "_raw_2"
    with connect(target) as wh:
        assert wh.ident("main", "select") == '"main"."select"'
        # A reserved word works once quoted: the quoting is real, not decoration.
        wh.execute(f"create schema if not exists {wh.ident('order')}")
        wh.execute(f"create table {wh.ident('order', 'select')} ({wh.ident('from')} integer)")
        assert wh.relation_exists("order", "select")


# -- find_version_by_digest -------------------------------------------------------------------------------------


def test_find_version_by_digest(tmp_path: Path) -> None:
    from insiders.registry import find_version_by_digest, save_model

    store = LocalStore(tmp_path / "artifacts")
    manifest = {"features": ["gross_revenue"], "feature_types": {"gross_revenue": "double"}}
    assert find_version_by_digest(store, sha(MODEL)) is None
    save_model(store, "v1", MODEL, manifest, "card")
    save_model(store, "v2", MODEL + b"other", manifest, "card")
    store.put("models/v0/manifest.json", b"{not json")  # unreadable versions are skipped, not fatal
    assert find_version_by_digest(store, sha(MODEL)) == "v1"
    assert find_version_by_digest(store, sha(MODEL + b"other").upper()) == "v2"
    assert find_version_by_digest(store, sha(b"never stored")) is None


# -- an unreachable store is reported as unreachable, not as a missing version -----------------------------------


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again on leaving: nothing listens there


def test_an_unreachable_s3_endpoint_is_not_reported_as_a_missing_version(
    s3_bucket: str, duckdb_file: Path, pinned_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import run_cli

    from insiders.artifacts import ArtifactStoreUnreachableError
    from insiders.registry import load_pinned, pin_version, save_model

    manifest = {"features": ["gross_revenue"], "feature_types": {"gross_revenue": "double"}}
    store = S3Store(s3_bucket, "insiders/prod")
    save_model(store, "v1", MODEL, manifest, "card")
    pin_version(store, "v1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-value")

    port = _closed_port()
    monkeypatch.setenv("INSIDERS_S3_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(
        ArtifactStoreUnreachableError, match=rf"cannot reach the S3 endpoint http://127\.0\.0\.1:{port}"
    ):
        load_pinned(S3Store(s3_bucket, "insiders/prod"))
    for command in (("score", "--target", "local"), ("promote", "v1"), ("models",)):
        monkeypatch.setenv("INSIDERS_ARTIFACT_URI", f"s3://{s3_bucket}/insiders/prod")
        proc = run_cli(*command, check=False)
        assert proc.returncode == 5, f"{command}: exit {proc.returncode}\n{proc.stderr}"
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: cannot reach the S3 endpoint http://127.0.0.1:{port}"), last
        assert "is not in" not in proc.stderr and "testing-secret-value" not in proc.stderr + proc.stdout
