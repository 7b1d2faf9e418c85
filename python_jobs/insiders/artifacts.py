"""The artifact store: where trained models, their manifests and model cards are kept.

Two backends share one interface, :class:`ArtifactStore`:

* :class:`LocalStore`, a folder (``artifacts/`` in the project directory by default), for development. Writes
  are atomic: a reader sees the old file or the new one, never half of one.
* :class:`S3Store`, a bucket and a key prefix, for production. Credentials and region come from the standard
  AWS chain (environment, profile, instance or task role); ``INSIDERS_S3_ENDPOINT_URL`` points it at an
  S3-compatible service or a test server. On a versioned bucket every upload records its ``VersionId`` so a
  model can be pinned to the exact bytes it was trained with.

:func:`open_store` picks the backend from a URI (``INSIDERS_ARTIFACT_URI`` by default). Stores move bytes and
never deserialise them: the caller checks the recorded sha256 with :func:`verify_sha256` before loading a
model. Every failure is an :class:`ArtifactError` whose message names the location and the cause, and never
a credential.
"""

from __future__ import annotations

import abc
import base64
import builtins
import contextlib
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from insiders import settings
from insiders.errors import EXIT_SERVICE_ERROR, InsidersError
from insiders.warehouse import project_dir

ARTIFACT_URI_ENV = "INSIDERS_ARTIFACT_URI"
S3_ENDPOINT_ENV = "INSIDERS_S3_ENDPOINT_URL"
DEFAULT_LOCAL_DIR = "artifacts"
SUPPORTED_FORMS = "s3://bucket[/prefix], file:///absolute/folder, or a folder path (relative to the project)"

# An unreachable endpoint must fail in seconds: a short connect timeout and few attempts. The read timeout
# bounds the wait for each answer, not the whole transfer, so large models still upload.
S3_CONNECT_TIMEOUT_S = 3
S3_READ_TIMEOUT_S = 30
S3_MAX_ATTEMPTS = 3  # the first try included

_TMP_PREFIX = ".insiders-tmp-"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")


class ArtifactError(InsidersError):
    """The artifact store cannot be reached, refused an operation, or does not hold what was asked for."""


class ArtifactNotFoundError(ArtifactError):
    """The store answered, and it holds no object (or no such version) under the key."""


class ArtifactStoreUnreachableError(ArtifactError):
    """The store did not answer (connection refused, DNS, timeout): nothing is known about the object."""

    exit_code = EXIT_SERVICE_ERROR


@dataclass(frozen=True)
class StoredObject:
    """What a ``put`` wrote: enough to find the same bytes again and to check them."""

    uri: str
    """Where the object is: an absolute file path, or ``s3://bucket/prefix/key``."""
    key: str
    """The key relative to the store root, with ``/`` separators."""
    size: int
    """Length in bytes."""
    sha256: str
    """Lower-case hex digest of the bytes."""
    version_id: str | None
    """The S3 ``VersionId`` on a versioned bucket, else ``None``."""


def sha256_hex(data: bytes) -> str:
    """The lower-case hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def verify_sha256(data: bytes, expected: str, what: str) -> None:
    """Raise :class:`ArtifactError` unless ``data`` hashes to ``expected``.

    Call it on downloaded bytes before deserialising them: a model file that is not the one recorded in the
    manifest must not be loaded. ``what`` names the object in the message (for example its URI).
    """
    wanted = str(expected).strip().lower()
    if not _SHA256_HEX.fullmatch(wanted):
        raise ArtifactError(
            f"the expected sha256 for {what} is not a 64-character hex digest ({expected!r}); refusing to load it"
        )
    actual = sha256_hex(data)
    if not hmac.compare_digest(actual, wanted):
        raise ArtifactError(f"sha256 mismatch for {what}: expected {wanted}, got {actual}; refusing to load it")


def _check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise: the same rules on every backend."""
    if not isinstance(key, str) or not key:
        raise ArtifactError(f"invalid artifact key {key!r}: it must be a non-empty relative path such as 'models/v1'")
    problem = None
    if key.startswith("/"):
        problem = "it is absolute"
    elif "\\" in key or "\x00" in key:
        problem = "it contains a backslash or a NUL character (use '/' to separate folders)"
    else:
        parts = key.split("/")
        if any(p in {"", ".", ".."} for p in parts):
            problem = "it has an empty, '.' or '..' part, which could escape the store root"
        elif any(p.startswith(_TMP_PREFIX) for p in parts):
            problem = f"names starting with {_TMP_PREFIX!r} are reserved for temporary files"
    if problem:
        raise ArtifactError(f"invalid artifact key {key!r}: {problem}")
    return key


def _check_prefix(prefix: str) -> str:
    """A listing prefix may end in ``/`` or stop mid-name, but may not be absolute or climb out of the root."""
    if not prefix:
        return ""
    if prefix.startswith("/") or "\\" in prefix or "\x00" in prefix or ".." in prefix.split("/"):
        raise ArtifactError(f"invalid listing prefix {prefix!r}: it must be relative and may not contain '..'")
    return prefix


class ArtifactStore(abc.ABC):
    """Bytes under ``/``-separated keys, relative to the store root."""

    uri: str
    """The store root: an absolute folder path, or ``s3://bucket/prefix``."""

    @abc.abstractmethod
    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> StoredObject:
        """Write ``data`` under ``key`` (replacing any previous content) and describe what was written."""

    @abc.abstractmethod
    def get(self, key: str, version_id: str | None = None) -> bytes:
        """Read the bytes under ``key`` (a given S3 version when ``version_id`` is set)."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether ``key`` holds an object."""

    @abc.abstractmethod
    def describe(self) -> str:
        """A one-line description without secrets, for messages and logs."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> builtins.list[str]:
        """Keys starting with ``prefix`` (a plain string prefix, as in S3), relative to the root, sorted."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


class LocalStore(ArtifactStore):
    """A folder on the local file system; keys map to files in subfolders."""

    def __init__(self, root: Path | str):
        self.root = Path(root).expanduser().resolve()
        if self.root.exists() and not self.root.is_dir():
            raise ArtifactError(f"the artifact store {self.root} exists but is not a folder")
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        path = self.root.joinpath(*_check_key(key).split("/"))
        # A symbolic link inside the store could still lead outside it.
        if not path.resolve().is_relative_to(self.root):
            raise ArtifactError(f"invalid artifact key {key!r}: it resolves outside the store {self.root}")
        return path

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> StoredObject:
        """Write atomically: a temporary file in the same folder, flushed to disk, then renamed over the key.

        ``content_type`` has no meaning on a file system and is ignored.
        """
        path = self._path(key)
        data = bytes(data)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArtifactError(f"cannot create the folder {path.parent}: {exc.strerror or exc}") from exc
        tmp = path.with_name(f"{_TMP_PREFIX}{path.name}.{secrets.token_hex(6)}")
        try:
            # os.open with 0o666 lets the umask decide permissions, as for any other file the user creates.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise ArtifactError(f"cannot write the artifact {path}: {exc.strerror or exc}") from exc
        _fsync_dir(path.parent)
        return StoredObject(uri=str(path), key=key, size=len(data), sha256=sha256_hex(data), version_id=None)

    def get(self, key: str, version_id: str | None = None) -> bytes:
        """Read the file under ``key``. A folder does not keep versions, so ``version_id`` must be ``None``."""
        path = self._path(key)
        if version_id is not None:
            raise ArtifactError(
                f"the local artifact store {self.root} does not keep versions; cannot read version "
                f"{version_id!r} of {key!r}"
            )
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise ArtifactNotFoundError(
                f"artifact {key!r} not found in the local store {self.root} (no file {path})"
            ) from exc
        except OSError as exc:
            raise ArtifactError(f"cannot read the artifact {path}: {exc.strerror or exc}") from exc

    def exists(self, key: str) -> bool:
        """Whether a file is stored under ``key``."""
        return self._path(key).is_file()

    def describe(self) -> str:
        """A one-line description for messages and logs."""
        return f"local artifact folder {self.root}"

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Keys starting with ``prefix``, sorted; temporary files of writes in progress are left out."""
        prefix = _check_prefix(prefix)
        folder = prefix.rpartition("/")[0]
        start = self.root.joinpath(*folder.split("/")) if folder else self.root
        if not start.is_dir():
            return []
        keys = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(_TMP_PREFIX)]
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith(_TMP_PREFIX):
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable where the platform allows it (POSIX); a no-op elsewhere."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class S3Store(ArtifactStore):
    """Objects under ``prefix/`` in an S3 bucket (or an S3-compatible service)."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None):
        if not bucket:
            raise ArtifactError(f"an S3 artifact store needs a bucket name; supported forms: {SUPPORTED_FORMS}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.client = client if client is not None else _s3_client()

    # -- naming ---------------------------------------------------------------------------------------
    def _full_key(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _object_uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full_key(key)}"

    def _endpoint(self) -> str:
        url = str(getattr(getattr(self.client, "meta", None), "endpoint_url", "") or "the default AWS endpoint")
        parts = urlsplit(url)
        # Never repeat user information that might have been put in an endpoint URL.
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}" if parts.netloc else url

    # -- operations -----------------------------------------------------------------------------------
    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> StoredObject:
        """Upload with a SHA-256 checksum that S3 verifies on arrival; record the ``VersionId`` if any."""
        full_key = self._full_key(key)
        data = bytes(data)
        digest = hashlib.sha256(data)
        try:
            response = self.client.put_object(
                Bucket=self.bucket,
                Key=full_key,
                Body=data,
                ContentType=content_type,
                ChecksumAlgorithm="SHA256",
                Metadata={"sha256": digest.hexdigest()},
            )
        except Exception as exc:
            raise self._error(exc, "upload", key=key) from exc
        echoed = response.get("ChecksumSHA256")
        if echoed and echoed != base64.b64encode(digest.digest()).decode("ascii"):
            raise ArtifactError(
                f"S3 acknowledged {self._object_uri(key)} with a different SHA-256 than the bytes sent; "
                "the upload is not trustworthy, try again"
            )
        return StoredObject(
            uri=self._object_uri(key),
            key=key,
            size=len(data),
            sha256=digest.hexdigest(),
            version_id=response.get("VersionId") or None,
        )

    def get(self, key: str, version_id: str | None = None) -> bytes:
        """Download the current object under ``key``, or the given version of it."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._full_key(key)}
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            response = self.client.get_object(**kwargs)
            with contextlib.closing(response["Body"]) as body:
                return body.read()
        except Exception as exc:
            raise self._error(exc, "download", key=key, version_id=version_id) from exc

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds an object; a missing bucket is an error, not ``False``."""
        full_key = self._full_key(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=full_key)
            return True
        except Exception as exc:
            if _error_code(exc) not in {"404", "NoSuchKey", "NotFound"}:
                raise self._error(exc, "look up", key=key) from exc
        # HEAD answers a bare 404 for a missing bucket too: ask the bucket to tell the two apart.
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            code = _error_code(exc)
            raise self._error(exc, "look up", key=key, missing_bucket=code in {"404", "NotFound"}) from exc
        return False

    def describe(self) -> str:
        """A one-line description without secrets, for messages and logs."""
        return f"S3 artifact store {self.uri} (endpoint {self._endpoint()})"

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Keys of the current objects starting with ``prefix``, relative to the store prefix, sorted."""
        prefix = _check_prefix(prefix)
        root = f"{self.prefix}/" if self.prefix else ""
        keys: builtins.list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=root + prefix)
            for page in pages:
                keys.extend(item["Key"][len(root) :] for item in page.get("Contents", []))
        except Exception as exc:
            raise self._error(exc, "list", where=f"s3://{self.bucket}/{root}{prefix}") from exc
        return sorted(keys)

    # -- errors ---------------------------------------------------------------------------------------
    def _error(
        self,
        exc: Exception,
        action: str,
        key: str | None = None,
        where: str | None = None,
        version_id: str | None = None,
        missing_bucket: bool = False,
    ) -> ArtifactError:
        """Translate a botocore exception into a message that says what failed and what to check."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            CredentialRetrievalError,
            EndpointConnectionError,
            HTTPClientError,
            NoCredentialsError,
            PartialCredentialsError,
            ReadTimeoutError,
        )

        if isinstance(exc, ArtifactError):
            return exc
        where = where or (self._object_uri(key) if key else self.uri)
        if isinstance(exc, NoCredentialsError):
            return ArtifactError(
                f"cannot {action} {where}: no AWS credentials found (set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with an instance or task role)"
            )
        if isinstance(exc, (PartialCredentialsError, CredentialRetrievalError)):
            return ArtifactError(f"cannot {action} {where}: the AWS credentials are incomplete or unavailable ({exc})")
        if isinstance(exc, ReadTimeoutError):
            return ArtifactStoreUnreachableError(
                f"the S3 endpoint {self._endpoint()} did not answer within {S3_READ_TIMEOUT_S} s "
                f"while trying to {action} {where}"
            )
        # Connection refused, DNS failure, connection reset or closed: the endpoint did not answer at all.
        if isinstance(exc, (ConnectTimeoutError, EndpointConnectionError, HTTPClientError)):
            return ArtifactStoreUnreachableError(
                f"cannot reach the S3 endpoint {self._endpoint()} to {action} {where} "
                f"({type(exc).__name__}); check the network, {S3_ENDPOINT_ENV} and AWS_ENDPOINT_URL"
            )
        if isinstance(exc, ClientError):
            code = _error_code(exc)
            message = str(exc.response.get("Error", {}).get("Message") or "").strip()
            if code == "NoSuchBucket" or missing_bucket:
                return ArtifactError(
                    f"bucket '{self.bucket}' does not exist (endpoint {self._endpoint()}); "
                    f"check the bucket in {ARTIFACT_URI_ENV}"
                )
            if code == "NoSuchVersion" or (version_id and code == "InvalidArgument"):
                return ArtifactNotFoundError(f"no version {version_id!r} of object '{key}' in {self.uri}")
            if code in {"NoSuchKey", "404", "NotFound"}:
                return ArtifactNotFoundError(f"no object '{key}' in {self.uri}")
            if code in {"AccessDenied", "403", "Forbidden", "AllAccessDisabled"}:
                return ArtifactError(
                    f"access denied to {where} when trying to {action} it (check the IAM permissions: "
                    "s3:GetObject/PutObject/ListBucket; without s3:ListBucket a missing object is also reported "
                    "as access denied)"
                )
            if code in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}:
                return ArtifactError(
                    f"the AWS credentials were rejected by {self._endpoint()} ({code}) when trying to {action} "
                    f"{where}; check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the role, and refresh "
                    "expired session tokens"
                )
            if code in {"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"}:
                return ArtifactError(
                    f"bucket '{self.bucket}' is in another region than the client ({code}); set AWS_REGION or "
                    "AWS_DEFAULT_REGION to the bucket's region"
                )
            detail = f"{code}: {message}" if message else code
            return ArtifactError(f"cannot {action} {where}: S3 answered {detail}")
        if isinstance(exc, BotoCoreError):
            return ArtifactError(f"cannot {action} {where}: {exc}")
        return ArtifactError(f"cannot {action} {where}: {type(exc).__name__}: {exc}")


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    code = response.get("Error", {}).get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(code or "")


def _s3_client() -> Any:
    """An S3 client from the standard AWS chain, with short timeouts and an optional endpoint override."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    endpoint = settings.text(S3_ENDPOINT_ENV) or None  # else boto3 reads AWS_ENDPOINT_URL itself
    config = Config(
        connect_timeout=S3_CONNECT_TIMEOUT_S,
        read_timeout=S3_READ_TIMEOUT_S,
        retries={"max_attempts": S3_MAX_ATTEMPTS, "mode": "standard"},
        user_agent_extra="insiders",
    )
    try:
        return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)
    except (BotoCoreError, ValueError) as exc:
        raise ArtifactError(f"cannot set up the S3 client: {exc}") from exc


def _redact(uri: str) -> str:
    """Drop anything that looks like user information (``user:secret@``) before showing a URI."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.\-]*://)[^/@]*@", r"\1***@", uri)


def open_store(uri: str | None = None) -> ArtifactStore:
    """Open the store at ``uri``: ``INSIDERS_ARTIFACT_URI`` when ``None``, else ``artifacts/`` in the project.

    Accepted forms: ``s3://bucket[/prefix]``, ``file:///absolute/folder``, or a folder path (relative paths are
    relative to the project directory). Opening does not contact S3; the first operation does.
    """
    if uri is None:
        uri = settings.text(ARTIFACT_URI_ENV) or None
        if uri is None:
            return LocalStore(project_dir() / DEFAULT_LOCAL_DIR)
    text = str(uri).strip()
    if not text:
        raise ArtifactError(f"empty artifact store URI; supported forms: {SUPPORTED_FORMS}")
    shown = _redact(text)

    def bad(reason: str) -> ArtifactError:
        return ArtifactError(f"invalid artifact store URI {shown!r}: {reason}; supported forms: {SUPPORTED_FORMS}")

    match = re.match(r"([A-Za-z][A-Za-z0-9+.\-]*):", text)
    scheme = match.group(1).lower() if match else ""
    if len(scheme) == 1:  # a Windows drive letter, not a scheme
        scheme = ""
    if scheme == "s3":
        parts = urlsplit(text)
        if not text.lower().startswith("s3://"):
            raise bad("an S3 URI starts with s3://")
        if "@" in parts.netloc:
            raise bad("credentials do not belong in the URI; use the AWS credential chain")
        if parts.query or parts.fragment:
            raise bad("an S3 URI has no query or fragment")
        bucket = parts.netloc
        if not bucket:
            raise bad("no bucket name")
        if not _BUCKET_NAME.fullmatch(bucket):
            raise bad(f"'{bucket}' is not a valid bucket name (3-63 lower-case letters, digits, dots and hyphens)")
        prefix = unquote(parts.path).strip("/")
        if prefix:
            try:
                _check_key(prefix)
            except ArtifactError as exc:
                raise bad(f"the prefix {prefix!r} is not a clean relative path") from exc
        return S3Store(bucket, prefix)
    if scheme == "file":
        parts = urlsplit(text)
        if parts.netloc not in {"", "localhost"}:
            raise bad("a file URI names an absolute folder, as in file:///srv/artifacts (use a plain path if relative)")
        if parts.query or parts.fragment:
            raise bad("a file URI has no query or fragment")
        path = unquote(parts.path)
        if not path:
            raise bad("no folder")
        return LocalStore(Path(path))
    if scheme:
        raise bad(f"unsupported scheme '{scheme}://'")
    folder = Path(text).expanduser()
    return LocalStore(folder if folder.is_absolute() else project_dir() / folder)
