"""Model versions in the artifact store, and the pin that tells the scheduled job which one to apply.

Layout in the store (a local folder or an S3 prefix)::

    models/<version>/model.joblib     the fitted SegmentModel (joblib)
    models/<version>/manifest.json    what the model is and how to check it (sha256 of model.joblib, …)
    models/<version>/model_card.md    the segment profiles, for people

The pin (``pinned_model.yml`` in the project, version-controlled) names the version, the sha256 of its
model file and the sha256 of its manifest: the store is not trusted, the pin is. ``INSIDERS_MODEL_VERSION``,
``INSIDERS_MODEL_SHA256`` and ``INSIDERS_MODEL_MANIFEST_SHA256`` override it, and ``INSIDERS_PIN_FILE`` points
at another pin file. Scoring checks the manifest's bytes against the pin before parsing it, checks that every
name in it is a plain SQL identifier, and hashes the downloaded model and compares it with the pin and the
manifest **before** unpickling anything.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from insiders import settings
from insiders.artifacts import (
    ArtifactError,
    ArtifactNotFoundError,
    ArtifactStore,
    StoredObject,
    open_store,
    verify_sha256,
)
from insiders.errors import ConfigError, InsidersError
from insiders.warehouse import IdentifierError, project_dir, validate_identifier


def _joblib():
    """joblib (and numpy with it) on first use: reading the pin alone, as a run with nothing new does, needs neither."""
    import joblib

    return joblib


MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"
CARD_FILE = "model_card.md"
PIN_HEADER = """\
# The model version that `insiders score` and `insiders run` apply, and the sha256 its artifact must have.
# Written by `insiders train --promote` (or `insiders promote VERSION`); commit the change to deploy it.
# manifest_sha256 authenticates the version's manifest.json (its feature list reaches SQL).
# INSIDERS_MODEL_VERSION / INSIDERS_MODEL_SHA256 / INSIDERS_MODEL_MANIFEST_SHA256 override these values;
# INSIDERS_ARTIFACT_URI the store.
"""
VERSION_ENV = "INSIDERS_MODEL_VERSION"
SHA256_ENV = "INSIDERS_MODEL_SHA256"
MANIFEST_SHA256_ENV = "INSIDERS_MODEL_MANIFEST_SHA256"

# Kinds of model kept in the same store and pinned in the same pin file, each under its own key prefix and pin
# entry: the segmentation model (``model:``, ``models/``) and the customer-value model (``value_model:``,
# ``value_models/``, see :mod:`insiders.value`). Every function below takes ``kind`` (segmentation by default).
SEGMENTATION = "segmentation"
VALUE = "value"
_KINDS = {
    # kind: (pin file entry, store prefix, environment variable prefix)
    SEGMENTATION: ("model", "models/", "INSIDERS_MODEL_"),
    VALUE: ("value_model", "value_models/", "INSIDERS_VALUE_MODEL_"),
}


def _kind(kind: str) -> tuple[str, str, str]:
    try:
        return _KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown model kind {kind!r}; one of {sorted(_KINDS)}") from None


def _label(kind: str) -> str:
    return "model" if kind == SEGMENTATION else f"{kind} model"


class ModelNotPinnedError(InsidersError):
    """No model version is pinned for scoring."""


class VersionNotFoundError(ArtifactError):
    """The store holds no manifest for this version."""


class ManifestRefusedError(ArtifactError):
    """A manifest that is not valid JSON, has the wrong shape, or names something that is not an identifier."""


# The sha256 of the manifest bytes this process wrote or read, by version: what a pin written right after
# training records (see write_pin).
_manifest_digests: dict[tuple[str, str], str] = {}
# A version id as new_version writes it, or any other plain name: it becomes part of a store key.
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,127}")
# Column types recorded in a manifest (compared with the warehouse's, never put into SQL, but kept plain).
_TYPE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_ ]*(\([0-9, ]+\))?")


@dataclass(frozen=True)
class Pin:
    """The pinned model version and the sha256 its artifact must have."""

    version: str
    sha256: str
    artifact_uri: str | None = None
    version_id: str | None = None  # S3 VersionId of model.joblib, when the bucket is versioned
    manifest_sha256: str | None = None  # sha256 of manifest.json; None only in pins written before it existed


def pin_file() -> Path:
    """Where the pin lives: ``INSIDERS_PIN_FILE`` or ``pinned_model.yml`` in the project."""
    env = settings.text("INSIDERS_PIN_FILE")
    return Path(env) if env else project_dir() / "pinned_model.yml"


def _pin_text(value: Any, field: str, path: Path) -> str | None:
    """A scalar of the pin file as text (``None`` when empty); anything else is a clear configuration error."""
    if value is None or value == "":
        return None
    if isinstance(value, (dict, list, bool)):
        raise ConfigError(f"{path}: model.{field} must be a single value, got {type(value).__name__} {value!r}")
    return str(value)


def pinned(kind: str = SEGMENTATION) -> Pin:
    """The pin, which must exist: :class:`ModelNotPinnedError` names the fix when nothing is pinned."""
    pin = read_pin(required=True, kind=kind)
    if pin is None:  # read_pin(required=True) raises first; this keeps the type honest
        raise ModelNotPinnedError(f"no {_label(kind)} is pinned")
    return pin


def read_pin(required: bool = True, kind: str = SEGMENTATION) -> Pin | None:
    """The pin, with environment overrides applied; ``None`` (or an error when required) if nothing is pinned."""
    entry, _, env_prefix = _kind(kind)
    version_env, sha256_env, manifest_env = (env_prefix + s for s in ("VERSION", "SHA256", "MANIFEST_SHA256"))
    data: dict[str, Any] = {}
    path = pin_file()
    if path.is_file():
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the pin file {path}: {exc}") from exc
        if document is not None and not isinstance(document, dict):
            raise ConfigError(f"{path} must be a mapping with a 'model:' entry, got {type(document).__name__}")
        data = (document or {}).get(entry) or {}
        if not isinstance(data, dict):
            raise ConfigError(
                f"{path}: '{entry}:' must be a mapping with version, sha256 and manifest_sha256, "
                f"got {type(data).__name__} {data!r}; write it with `insiders promote VERSION`"
            )
    env_version = settings.text(version_env)
    version = env_version or _pin_text(data.get("version"), "version", path)
    sha256 = settings.text(sha256_env) or _pin_text(data.get("sha256"), "sha256", path)
    # The file's manifest digest belongs to the file's version: a version from the environment needs its own.
    if env_version:
        manifest_sha256 = settings.text(manifest_env) or None
    else:
        manifest_sha256 = settings.text(manifest_env) or _pin_text(data.get("manifest_sha256"), "manifest_sha256", path)
    if not version or not sha256:
        if required:
            command = "insiders train --promote" if kind == SEGMENTATION else f"insiders {kind} train --promote"
            raise ModelNotPinnedError(
                f"no {_label(kind)} is pinned ({path} has no {entry} version and sha256, and {version_env} / "
                f"{sha256_env} are not set); train one and pin it with `{command}`"
            )
        return None
    return Pin(
        version=str(version),
        sha256=str(sha256).lower(),
        artifact_uri=_pin_text(data.get("artifact_uri"), "artifact_uri", path),
        version_id=_pin_text(data.get("s3_version_id"), "s3_version_id", path),
        manifest_sha256=manifest_sha256.lower() if manifest_sha256 else None,
    )


def write_pin(pin: Pin, kind: str = SEGMENTATION) -> Path:
    """Write the pin file atomically.

    A pin without ``manifest_sha256`` takes the digest of the manifest this process wrote or read for that
    version (training with ``--promote`` saves the manifest just before pinning it); without one it is refused,
    so that no unauthenticated pin is ever written. The entries of the other kinds in the file are kept.
    """
    entry, _, _ = _kind(kind)
    if not pin.manifest_sha256:
        known = _manifest_digests.get((kind, pin.version))
        if not known:
            raise ArtifactError(
                f"cannot pin model version {pin.version} without the sha256 of its manifest; "
                f"pin it with `insiders promote {pin.version}`"
            )
        pin = dataclasses.replace(pin, manifest_sha256=known)
    path = pin_file()
    others: dict[str, Any] = {}
    if path.is_file():
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the pin file {path} to update it: {exc}") from exc
        if isinstance(document, dict):
            known_entries = {e for e, _, _ in _KINDS.values()}
            others = {k: v for k, v in document.items() if k in known_entries and k != entry and v}
    body = {
        **({"model": others.pop("model")} if "model" in others else {}),
        entry: {
            "version": pin.version,
            "sha256": pin.sha256,
            "manifest_sha256": pin.manifest_sha256,
            "artifact_uri": pin.artifact_uri,
            "s3_version_id": pin.version_id,
            "pinned_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        **others,
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
        "joblib": _joblib().__version__,
    }


def dump_model(model: Any) -> bytes:
    """The joblib bytes of a model (compressed, deterministic for the same fitted state)."""
    buf = io.BytesIO()
    _joblib().dump(model, buf, compress=3)
    return buf.getvalue()


@dataclass(frozen=True)
class SavedModel:
    """What ``save_model`` wrote."""

    version: str
    store_uri: str
    model: StoredObject
    manifest: dict[str, Any]


def stored_model(store: ArtifactStore, version: str, manifest: dict[str, Any]) -> SavedModel:
    """A version already in the store, described by its manifest."""
    artifact = manifest["artifact"]
    stored = StoredObject(
        uri=f"{store.uri.rstrip('/')}/{artifact['key']}",
        key=artifact["key"],
        size=int(artifact["size"]),
        sha256=artifact["sha256"],
        version_id=artifact.get("s3_version_id"),
    )
    return SavedModel(version=version, store_uri=store.uri, model=stored, manifest=manifest)


def save_model(
    store: ArtifactStore,
    version: str,
    model_bytes: bytes,
    manifest: dict[str, Any],
    card: str,
    kind: str = SEGMENTATION,
) -> SavedModel:
    """Write artifact, then model card, then manifest (last, so a manifest always describes a complete version)."""
    prefix = f"{_kind(kind)[1]}{version}/"
    if store.exists(prefix + MANIFEST_FILE):
        # The version id holds the artifact's hash: the same version is the same model, already saved.
        existing = read_manifest(store, version, kind)
        artifact = existing.get("artifact", {})
        if artifact.get("sha256") != hashlib.sha256(model_bytes).hexdigest():
            raise ArtifactError(f"model version {version} already exists in {store.describe()} with other bytes")
        return stored_model(store, version, existing)
    stored = store.put(prefix + MODEL_FILE, model_bytes)
    manifest = {
        **manifest,
        "model_version": version,
        "kind": kind,
        "artifact": {
            "key": prefix + MODEL_FILE,
            "sha256": stored.sha256,
            "size": stored.size,
            "s3_version_id": stored.version_id,
        },
    }
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=False, default=str).encode("utf-8")
    # A manifest is only written when every name in it could later go into SQL safely.
    validate_manifest(json.loads(manifest_bytes), version)
    store.put(prefix + CARD_FILE, card.encode("utf-8"), content_type="text/markdown")
    store.put(prefix + MANIFEST_FILE, manifest_bytes, content_type="application/json")
    _manifest_digests[(kind, version)] = hashlib.sha256(manifest_bytes).hexdigest()
    return SavedModel(version=version, store_uri=store.uri, model=stored, manifest=manifest)


def read_manifest_bytes(store: ArtifactStore, version: str, kind: str = SEGMENTATION) -> bytes:
    """The raw bytes of a version's manifest; a clear error when the version does not exist."""
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise VersionNotFoundError(f"{version!r} is not a model version name (letters, digits, '.', '_' and '-')")
    key = f"{_kind(kind)[1]}{version}/{MANIFEST_FILE}"
    try:
        return store.get(key)
    except ArtifactNotFoundError as exc:
        # Only an answer "no such object" means the version is missing; an unreachable store says so itself.
        raise VersionNotFoundError(f"{_label(kind)} version {version} is not in {store.describe()}: {exc}") from exc


def parse_manifest(raw: bytes, version: str, kind: str = SEGMENTATION) -> dict[str, Any]:
    """Parse and validate manifest bytes (see :func:`validate_manifest`); a manifest of another kind is refused."""
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestRefusedError(f"the manifest of model version {version} is not valid JSON") from exc
    validate_manifest(manifest, version)
    # Manifests written before kinds existed are segmentation models.
    if manifest.get("kind", SEGMENTATION) != kind:
        raise ManifestRefusedError(
            f"version {version} is a {manifest.get('kind')} model, not a {kind} model; refusing to use it as one"
        )
    _manifest_digests[(kind, version)] = hashlib.sha256(raw).hexdigest()
    return manifest


def validate_manifest(manifest: Any, version: str) -> None:
    """Refuse a manifest whose shape is wrong or whose names are not plain SQL identifiers.

    Feature and column names are put into SQL by scoring: each must pass
    :func:`insiders.warehouse.validate_identifier`, whatever the pin says.
    """

    def bad(reason: str) -> ArtifactError:
        return ManifestRefusedError(f"the manifest of model version {version} is refused: {reason}")

    if not isinstance(manifest, dict):
        raise bad("it is not a JSON object")
    if manifest.get("model_version") != version:
        raise bad(f"it describes version {manifest.get('model_version')!r}")
    features = manifest.get("features")
    if not isinstance(features, list) or not features:
        raise bad("'features' must be a non-empty list of column names")
    types = manifest.get("feature_types")
    if not isinstance(types, dict):
        raise bad("'feature_types' must map each feature to its column type")
    columns = manifest.get("training_columns", list(types))
    if not isinstance(columns, list):
        raise bad("'training_columns' must be a list of column names")
    try:
        for name in [*features, *types, *columns]:
            validate_identifier(name, "feature or column name")
    except IdentifierError as exc:
        raise bad(str(exc)) from exc
    if len(set(features)) != len(features):
        raise bad(f"features are repeated: {features}")
    if set(types) != set(features):
        raise bad(
            f"'feature_types' names {sorted(types)} but 'features' names {sorted(features)}; they must be the same"
        )
    for name, kind in types.items():
        if not isinstance(kind, str) or not _TYPE_NAME.fullmatch(kind):
            raise bad(f"the type of {name} is not a plain SQL type name: {kind!r}")
    artifact = manifest.get("artifact")
    if not isinstance(artifact, dict) or not isinstance(artifact.get("key"), str) or not artifact.get("sha256"):
        raise bad("'artifact' must give the model file's key and sha256")


def read_manifest(store: ArtifactStore, version: str, kind: str = SEGMENTATION) -> dict[str, Any]:
    """The validated manifest of a version; a clear error when the version does not exist.

    Not authenticated: use it to look at versions; :func:`load_pinned` checks the pinned digest as well.
    """
    return parse_manifest(read_manifest_bytes(store, version, kind), version, kind)


def find_version_by_digest(store: ArtifactStore, sha256: str, kind: str = SEGMENTATION) -> str | None:
    """The existing version whose model artifact has this sha256 (the oldest if several), else ``None``.

    Lets training reuse a version instead of storing the same artifact twice. Versions whose manifest cannot
    be read or is refused are skipped: they cannot be the answer.
    """
    wanted = str(sha256).strip().lower()
    for version in list_versions(store, kind):
        try:
            manifest = read_manifest(store, version, kind)
        except (VersionNotFoundError, ManifestRefusedError):
            continue
        if str(manifest["artifact"].get("sha256", "")).lower() == wanted:
            return version
    return None


def pin_version(store: ArtifactStore, version: str, kind: str = SEGMENTATION) -> Pin:
    """Pin an existing version: its model's sha256 and its manifest's sha256, as read now from the store.

    The version is checked before the pin is written (manifest valid; artifact present with the recorded
    sha256), so a failed promotion leaves the previous pin as it was. S3 stores are recorded in the pin;
    local ones come from configuration, as with ``insiders train --promote``.
    """
    raw = read_manifest_bytes(store, version, kind)
    manifest = parse_manifest(raw, version, kind)
    artifact = manifest["artifact"]
    data = store.get(artifact["key"], version_id=artifact.get("s3_version_id"))
    verify_sha256(data, artifact["sha256"], f"{store.describe()} {artifact['key']}")
    pin = Pin(
        version=version,
        sha256=str(artifact["sha256"]).lower(),
        artifact_uri=store.uri if store.uri.startswith("s3://") else None,
        version_id=artifact.get("s3_version_id"),
        manifest_sha256=hashlib.sha256(raw).hexdigest(),
    )
    write_pin(pin, kind)
    return pin


def list_versions(store: ArtifactStore, kind: str = SEGMENTATION) -> list[str]:
    """Versions with a manifest, oldest first."""
    keys = store.list(_kind(kind)[1])
    return sorted({k.split("/")[1] for k in keys if k.endswith("/" + MANIFEST_FILE) and k.count("/") == 2})


@dataclass
class LoadedModel:
    """A verified, deserialised model and its manifest."""

    model: Any
    manifest: dict[str, Any]
    pin: Pin
    store_uri: str


def load_pinned(store: ArtifactStore | None = None, pin: Pin | None = None, kind: str = SEGMENTATION) -> LoadedModel:
    """Download the pinned model and check it against the pin before using anything from the store.

    Order: the manifest's bytes against the pin's ``manifest_sha256``, then the manifest's content (names
    must be plain identifiers), then the model's sha256 against the pin and the manifest, then unpickling,
    then the unpickled model's features against the manifest's.
    """
    pin = pin or pinned(kind)
    store = store or open_store(settings.text("INSIDERS_ARTIFACT_URI") or pin.artifact_uri)
    raw = read_manifest_bytes(store, pin.version, kind)
    if not pin.manifest_sha256:
        raise ArtifactError(
            f"the pin of model version {pin.version} has no manifest_sha256 (it was written before manifests "
            f"were authenticated, or {VERSION_ENV} is set without {MANIFEST_SHA256_ENV}); re-promote the "
            f"version with `insiders promote {pin.version}` and commit {pin_file().name}"
        )
    verify_sha256(raw, pin.manifest_sha256, f"the manifest of model version {pin.version} in {store.describe()}")
    manifest = parse_manifest(raw, pin.version, kind)
    recorded = str(manifest["artifact"].get("sha256", "")).lower()
    if recorded != pin.sha256:
        raise ArtifactError(
            f"model version {pin.version}: the pin expects sha256 {pin.sha256} but the manifest records "
            f"{recorded or 'none'}; refusing to load it"
        )
    key = manifest["artifact"]["key"]
    data = store.get(key, version_id=pin.version_id)
    verify_sha256(data, pin.sha256, f"{store.describe()} {key}")
    try:
        model = _joblib().load(io.BytesIO(data))
    except Exception as exc:  # a verified artifact that does not load: library mismatch
        raise ArtifactError(
            f"model version {pin.version} passed its sha256 check but cannot be loaded ({exc}); it was trained "
            f"with {manifest.get('libraries')}, this environment has {library_versions()}"
        ) from exc
    model_features = list(getattr(model, "features", None) or [])
    if model_features != list(manifest["features"]):
        raise ArtifactError(
            f"model version {pin.version}: the model was trained on features {model_features} but its manifest "
            f"lists {list(manifest['features'])}; the version is inconsistent, train and promote a new one"
        )
    return LoadedModel(model=model, manifest=manifest, pin=pin, store_uri=store.uri)
