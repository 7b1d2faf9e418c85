"""Model versions in the artifact store, and the pin that tells the scheduled job which one to apply.

Layout in the store (a local folder or an S3 prefix)::

    models/<version>/model.joblib     the fitted SegmentModel (joblib)
    models/<version>/manifest.json    what the model is and how to check it (sha256 of model.joblib, …)
    models/<version>/model_card.md    the segment profiles, for people

The pin (``pinned_model.yml`` in the project, version-controlled) names the version and the sha256 that
scoring accepts. ``INSIDERS_MODEL_VERSION`` and ``INSIDERS_MODEL_SHA256`` override it, and
``INSIDERS_PIN_FILE`` points at another pin file. Scoring hashes the downloaded bytes and compares them with
the pin and the manifest **before** unpickling anything.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import yaml

from insiders.artifacts import ArtifactError, ArtifactStore, StoredObject, open_store, verify_sha256
from insiders.errors import ConfigError, InsidersError
from insiders.warehouse import project_dir

MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"
CARD_FILE = "model_card.md"
PIN_HEADER = """\
# The model version that `insiders score` and `insiders run` apply, and the sha256 its artifact must have.
# Written by `insiders train --promote` (or `insiders promote VERSION`); commit the change to deploy it.
# INSIDERS_MODEL_VERSION / INSIDERS_MODEL_SHA256 override these values; INSIDERS_ARTIFACT_URI the store.
"""


class ModelNotPinnedError(InsidersError):
    """No model version is pinned for scoring."""


@dataclass(frozen=True)
class Pin:
    """The pinned model version and the sha256 its artifact must have."""

    version: str
    sha256: str
    artifact_uri: str | None = None
    version_id: str | None = None  # S3 VersionId of model.joblib, when the bucket is versioned


def pin_file() -> Path:
    """Where the pin lives: ``INSIDERS_PIN_FILE`` or ``pinned_model.yml`` in the project."""
    env = os.environ.get("INSIDERS_PIN_FILE")
    return Path(env) if env else project_dir() / "pinned_model.yml"


def read_pin(required: bool = True) -> Pin | None:
    """The pin, with environment overrides applied; ``None`` (or an error when required) if nothing is pinned."""
    data: dict[str, Any] = {}
    path = pin_file()
    if path.is_file():
        try:
            data = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("model") or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    version = os.environ.get("INSIDERS_MODEL_VERSION") or data.get("version")
    sha256 = os.environ.get("INSIDERS_MODEL_SHA256") or data.get("sha256")
    if not version or not sha256:
        if required:
            raise ModelNotPinnedError(
                f"no model is pinned ({path} has no version and sha256, and INSIDERS_MODEL_VERSION / "
                "INSIDERS_MODEL_SHA256 are not set); train one and pin it with `insiders train --promote`"
            )
        return None
    return Pin(
        version=str(version),
        sha256=str(sha256).lower(),
        artifact_uri=data.get("artifact_uri"),
        version_id=data.get("s3_version_id"),
    )


def write_pin(pin: Pin) -> Path:
    """Write the pin file atomically."""
    path = pin_file()
    body = {
        "model": {
            "version": pin.version,
            "sha256": pin.sha256,
            "artifact_uri": pin.artifact_uri,
            "s3_version_id": pin.version_id,
            "pinned_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    }
    text = PIN_HEADER + yaml.safe_dump(body, sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def new_version(model_bytes: bytes, now: dt.datetime | None = None) -> str:
    """A sortable, unique version id: the UTC training time and the start of the artifact's sha256."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{hashlib.sha256(model_bytes).hexdigest()[:8]}"


def data_fingerprint(features: Any) -> str:
    """sha256 of the training table's content (row order independent: sorted by customer_id)."""
    import pandas as pd

    frame = features.sort_values("customer_id").reset_index(drop=True)
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes() + ",".join(frame.columns).encode()).hexdigest()


def library_versions() -> dict[str, str]:
    """Versions that must match for a pickled scikit-learn model to load faithfully."""
    import numpy
    import pandas
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "pandas": pandas.__version__,
        "numpy": numpy.__version__,
        "joblib": joblib.__version__,
    }


def dump_model(model: Any) -> bytes:
    """The joblib bytes of a model (compressed, deterministic for the same fitted state)."""
    buf = io.BytesIO()
    joblib.dump(model, buf, compress=3)
    return buf.getvalue()


@dataclass(frozen=True)
class SavedModel:
    """What ``save_model`` wrote."""

    version: str
    store_uri: str
    model: StoredObject
    manifest: dict[str, Any]


def save_model(
    store: ArtifactStore, version: str, model_bytes: bytes, manifest: dict[str, Any], card: str
) -> SavedModel:
    """Write artifact, then model card, then manifest (last, so a manifest always describes a complete version)."""
    prefix = f"models/{version}/"
    if store.exists(prefix + MANIFEST_FILE):
        # The version id holds the artifact's hash: the same version is the same model, already saved.
        existing = read_manifest(store, version)
        artifact = existing.get("artifact", {})
        if artifact.get("sha256") != hashlib.sha256(model_bytes).hexdigest():
            raise ArtifactError(f"model version {version} already exists in {store.describe()} with other bytes")
        stored = StoredObject(
            uri=f"{store.uri.rstrip('/')}/{artifact['key']}",
            key=artifact["key"],
            size=int(artifact["size"]),
            sha256=artifact["sha256"],
            version_id=artifact.get("s3_version_id"),
        )
        return SavedModel(version=version, store_uri=store.uri, model=stored, manifest=existing)
    stored = store.put(prefix + MODEL_FILE, model_bytes)
    manifest = {
        **manifest,
        "model_version": version,
        "artifact": {
            "key": prefix + MODEL_FILE,
            "sha256": stored.sha256,
            "size": stored.size,
            "s3_version_id": stored.version_id,
        },
    }
    store.put(prefix + CARD_FILE, card.encode("utf-8"), content_type="text/markdown")
    store.put(
        prefix + MANIFEST_FILE,
        json.dumps(manifest, indent=2, sort_keys=False, default=str).encode("utf-8"),
        content_type="application/json",
    )
    return SavedModel(version=version, store_uri=store.uri, model=stored, manifest=manifest)


def read_manifest(store: ArtifactStore, version: str) -> dict[str, Any]:
    """The manifest of a version; a clear error when the version does not exist."""
    key = f"models/{version}/{MANIFEST_FILE}"
    try:
        raw = store.get(key)
    except ArtifactError as exc:
        raise ArtifactError(f"model version {version} is not in {store.describe()}: {exc}") from exc
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"the manifest of model version {version} is not valid JSON") from exc


def list_versions(store: ArtifactStore) -> list[str]:
    """Versions with a manifest, oldest first."""
    keys = store.list("models/")
    return sorted({k.split("/")[1] for k in keys if k.endswith("/" + MANIFEST_FILE) and k.count("/") == 2})


@dataclass
class LoadedModel:
    """A verified, deserialised model and its manifest."""

    model: Any
    manifest: dict[str, Any]
    pin: Pin
    store_uri: str


def load_pinned(store: ArtifactStore | None = None, pin: Pin | None = None) -> LoadedModel:
    """Download the pinned model, check its sha256 against the pin and the manifest, then unpickle it."""
    pin = pin or read_pin()
    assert pin is not None
    store = store or open_store(os.environ.get("INSIDERS_ARTIFACT_URI") or pin.artifact_uri)
    manifest = read_manifest(store, pin.version)
    recorded = str(manifest.get("artifact", {}).get("sha256", "")).lower()
    if recorded != pin.sha256:
        raise ArtifactError(
            f"model version {pin.version}: the pin expects sha256 {pin.sha256} but the manifest records "
            f"{recorded or 'none'}; refusing to load it"
        )
    key = manifest["artifact"]["key"]
    data = store.get(key, version_id=pin.version_id)
    verify_sha256(data, pin.sha256, f"{store.describe()} {key}")
    try:
        model = joblib.load(io.BytesIO(data))
    except Exception as exc:  # a verified artifact that does not load: library mismatch
        raise ArtifactError(
            f"model version {pin.version} passed its sha256 check but cannot be loaded ({exc}); it was trained "
            f"with {manifest.get('libraries')}, this environment has {library_versions()}"
        ) from exc
    return LoadedModel(model=model, manifest=manifest, pin=pin, store_uri=store.uri)
