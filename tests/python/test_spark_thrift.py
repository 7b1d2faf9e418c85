"""The ``spark_thrift`` target (dbt-spark's thrift and http methods, PyHive) against a real Spark Thrift server.

The server is pyspark's own ``HiveThriftServer2`` (a jar of the [spark] group: nothing is downloaded), started
with ``spark-submit`` in local mode with the ``spark`` target's settings from profiles.yml, on the scratch warehouse
folder and Derby metastore of the test, listening on a free port of 127.0.0.1; its default time zone is not UTC and
its ANSI mode is Spark 4's default (on), so the results hold only if the sessions dbt opens set both as the spark
target does. Embedded Derby admits one JVM at a time, so the steps take turns, each JVM gone before the next starts:

1. ``insiders load`` on the ``spark`` target (a child process: load needs a SparkSession);
2. a Thrift server (authentication NONE: SASL PLAIN) and ``dbt build --selector features --target spark_thrift``
   through it; customer_features and customer_value_inputs read back through the Thrift connection;
3. ``insiders score`` on the ``spark`` target, reading the customer_features that dbt built through Thrift;
4. a second server (NOSASL, ``INSIDERS_SPARK_AUTH=NOSASL``) and ``dbt build --selector segments`` through it; the
   marts read back the same way;
5. a third server in HTTP transport mode over TLS, as a Databricks or EMR HTTP endpoint is reached
   (``INSIDERS_SPARK_METHOD=http``: dbt-spark posts the Thrift calls to
   ``https://host:port/sql/protocolv1/o/<organization>/<cluster>`` with a Basic ``token:<token>`` header). The
   server serves that path (``hive.server2.thrift.http.path``; a POST elsewhere gets 405) with a self-signed key
   that Java's ``keytool`` makes in the scratch folder; dbt's process trusts that certificate alone
   (``SSL_CERT_FILE``, read by Python's default SSL context, which thrift's ``THttpClient`` uses), and
   authentication NONE takes the dummy token given in dbt's environment. The test's own connections check first
   that the server refuses a client that does not trust the certificate and serves no other path; then the
   features' two tables are dropped, dbt's sessions checked as in step 2, the two built again with
   ``dbt build --select`` through HTTP, and read back through it.

What each read back is compared with what ``insiders run`` gives on DuckDB for the same file and the same pinned
model: the same customers and values (numbers to 1e-9 relative), with the helpers of ``test_spark.py``. The tests
skip without pyspark or Java and fail instead with ``INSIDERS_REQUIRE_SPARK=1`` (CI). No certificate or key is
kept: each run makes its own.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pandas as pd
import pytest
import yaml
from conftest import PROJECT, _missing, run_dbt
from test_spark import _assert_same_rows, _assert_same_values, _duckdb_frame, _env, _insiders

from insiders.warehouse import load_target

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.usefixtures("spark_available")]

HOST = "127.0.0.1"
SERVER_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"
#: seconds the server gets to listen (a JVM, Spark and the metastore start on a 2-core machine)
STARTUP_TIMEOUT = 240
STOP_TIMEOUT = 60
#: marts compared with DuckDB's published ones, with the columns that order their rows
MARTS = {
    "dim_customers": ["customer_id"],
    "dim_products": ["stock_code"],
    "dim_segments": ["segment_rank"],
    "insiders": ["customer_id"],
    "insiders_summary": ["customers"],
    "segment_profiles": ["segment_rank"],
    "segment_monthly_revenue": ["revenue_month", "segment_name"],
}
_DATE_TYPES = {"DATE_TYPE", "TIMESTAMP_TYPE"}
SERVER_TIME_ZONE = "America/New_York"
#: The features' tables, built again through the HTTP transport (the ones the features step builds for scoring)
FEATURES = ("customer_features", "customer_value_inputs")
#: The HTTP server's path, as dbt-spark's http method builds it: /sql/protocolv1/o/<organization>/<cluster>
HTTP_ORGANIZATION = "0"
HTTP_CLUSTER = "0123-456789-insiders"
#: Authentication NONE takes any token (the session's user is "token"); a Databricks endpoint checks it.
HTTP_TOKEN = "insiders-test-token"


@dataclass(frozen=True)
class ThriftServer:
    """A running Spark Thrift server: where it listens, how it authenticates, and its log file.

    With a ``certificate``, the server is in HTTP transport mode over TLS (the protocol of a Databricks or EMR
    HTTP endpoint) and ``certificate`` is the PEM file of its self-signed key: the one certificate its clients
    trust.
    """

    port: int
    auth: str
    log: Path
    certificate: Path | None = None

    def profile_env(self) -> dict[str, str]:
        """The variables that point the ``spark_thrift`` target of profiles.yml at this server."""
        if self.certificate is None:
            return {
                "INSIDERS_SPARK_METHOD": "thrift",
                "INSIDERS_SPARK_HOST": HOST,
                "INSIDERS_SPARK_PORT": str(self.port),
                "INSIDERS_SPARK_AUTH": self.auth,
            }
        return {
            "INSIDERS_SPARK_METHOD": "http",
            "INSIDERS_SPARK_HOST": HOST,  # dbt-spark puts https:// before it
            "INSIDERS_SPARK_PORT": str(self.port),
            "INSIDERS_SPARK_TOKEN": HTTP_TOKEN,
            "INSIDERS_SPARK_ORGANIZATION": HTTP_ORGANIZATION,
            "INSIDERS_SPARK_CLUSTER": HTTP_CLUSTER,
            # dbt-spark gives thrift's THttpClient no SSL context: http.client then uses Python's default one,
            # whose trusted certificates OpenSSL reads from these two variables. The file holds the server's
            # certificate alone and the folder no hashed certificate name, so nothing else is trusted.
            "SSL_CERT_FILE": str(self.certificate),
            "SSL_CERT_DIR": str(self.certificate.parent),
            # THttpClient goes through an https_proxy of the environment unless no_proxy names the host.
            "no_proxy": HOST,
            "NO_PROXY": HOST,
        }

    def connect(self, *, context: ssl.SSLContext | None = None) -> Any:
        """A PyHive connection as dbt-spark opens one, with the session settings of the spark_thrift target.

        Over HTTP: the URL and the Basic "token:<token>" header of dbt-spark's http method, trusting what
        ``context`` trusts (the server's certificate alone by default).
        """
        from pyhive import hive

        if self.certificate is None:
            return hive.connect(
                host=HOST, port=self.port, username="insiders", auth=self.auth, configuration=_session_settings()
            )
        from thrift.transport import THttpClient

        if context is None:
            context = ssl.create_default_context(cafile=str(self.certificate))
        with mock.patch.dict(os.environ, {"no_proxy": HOST, "NO_PROXY": HOST}):
            transport = THttpClient.THttpClient(f"https://{HOST}:{self.port}{_http_path()}", ssl_context=context)
        transport.setCustomHeaders(_http_headers())
        return hive.connect(thrift_transport=transport, configuration=_session_settings())

    def http_status(self, path: str) -> int:
        """The HTTP status of an empty POST to ``path`` (the server's certificate trusted), as a client sends it.

        Where the Thrift servlet is not mapped, the server's default servlet answers 405 Method Not Allowed.
        """
        assert self.certificate is not None
        context = ssl.create_default_context(cafile=str(self.certificate))
        connection = http.client.HTTPSConnection(HOST, self.port, timeout=30, context=context)
        try:
            connection.request("POST", path, body=b"", headers=_http_headers())
            return connection.getresponse().status
        finally:
            connection.close()

    def execute(self, sql: str) -> None:
        """One statement through the server, for its effect."""
        with contextlib.closing(self.connect()) as conn, contextlib.closing(conn.cursor()) as cursor:
            cursor.execute(sql)

    def frame(self, sql: str) -> pd.DataFrame:
        """One query's result through the server (PyHive, as dbt connects), dates and timestamps as datetimes.

        The Thrift protocol carries dates, timestamps and decimals as text; the decimals are left to
        ``_comparable``, which reads text numbers as numbers.
        """
        with contextlib.closing(self.connect()) as conn, contextlib.closing(conn.cursor()) as cursor:
            cursor.execute(sql)
            rows = cursor.fetchall()
            description = cursor.description
        columns = [str(d[0]).rsplit(".", 1)[-1] for d in description]
        frame = pd.DataFrame.from_records(rows, columns=columns)
        for (_, type_code, *_rest), column in zip(description, columns, strict=True):
            if type_code in _DATE_TYPES:
                frame[column] = pd.to_datetime(frame[column])
        return frame


def _http_path(organization: str = HTTP_ORGANIZATION, cluster: str = HTTP_CLUSTER) -> str:
    """The path dbt-spark's http method posts to (``SparkConnectionManager.SPARK_CLUSTER_HTTP_PATH``)."""
    return f"/sql/protocolv1/o/{organization}/{cluster}"


def _http_headers() -> dict[str, str]:
    """The header dbt-spark's http method sends: Basic authentication of user "token" without a password."""
    token = base64.standard_b64encode(f"token:{HTTP_TOKEN}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/x-thrift"}


def _session_settings() -> dict[str, str]:
    """The settings the spark_thrift target gives each session (profiles.yml), for the test's own reads."""
    profile = yaml.safe_load((PROJECT / "profiles.yml").read_text(encoding="utf-8"))
    settings = profile["insiders"]["outputs"]["spark_thrift"]["server_side_parameters"]
    return {str(key): str(value) for key, value in settings.items()}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _spark_submit() -> Path:
    """pyspark's spark-submit, after checking that its jars include the Thrift server."""
    import pyspark

    home = Path(pyspark.__file__).parent
    if not any((home / "jars").glob("spark-hive-thriftserver_*.jar")):
        _missing(f"pyspark in {home} has no spark-hive-thriftserver jar", "INSIDERS_REQUIRE_SPARK")
    return home / "bin" / "spark-submit"


def _keytool() -> str:
    """Java's keytool, beside the java that Spark runs."""
    java_home = os.environ.get("JAVA_HOME", "")
    found = str(Path(java_home, "bin", "keytool")) if java_home else shutil.which("keytool")
    if not found or not Path(found).is_file():
        _missing("Java's keytool is not found (JAVA_HOME/bin or PATH)", "INSIDERS_REQUIRE_SPARK")
    return str(found)


def _self_signed_keystore(folder: Path) -> tuple[Path, str, Path]:
    """A new RSA key and its self-signed certificate for 127.0.0.1 in a PKCS12 keystore, made with keytool.

    Returns the keystore, its password (random, for this test only) and the certificate as a PEM file, alone in
    ``folder``.
    """
    folder.mkdir(parents=True)
    keystore, certificate, password = folder / "server.p12", folder / "server.pem", secrets.token_hex(16)
    store = ["-alias", "insiders", "-keystore", str(keystore), "-storetype", "PKCS12", "-storepass", password]
    key = ["-keypass", password, "-keyalg", "RSA", "-keysize", "2048", "-validity", "2", "-dname", "CN=localhost"]
    for command in (
        ["-genkeypair", *store, *key, "-ext", f"SAN=ip:{HOST},dns:localhost", "-noprompt"],
        ["-exportcert", "-rfc", *store, "-file", str(certificate)],
    ):
        proc = subprocess.run([_keytool(), *command], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            pytest.fail(f"keytool {command[0]} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return keystore, password, certificate


def _server_command(env: dict[str, str], port: int, auth: str, keystore: tuple[Path, str] | None = None) -> list[str]:
    """spark-submit of the Thrift server with the ``spark`` target's settings, as the jobs would open a session.

    The settings are the profile's ``server_side_parameters`` rendered with the test's environment (its warehouse
    folder, its metastore and Derby's home beside it), plus where to listen and how to authenticate. With a
    ``keystore`` (its path and password), the server takes HTTP over TLS on ``port``, at the path dbt-spark's
    http method asks for (the server serves that path and any below it; a POST elsewhere gets 405).
    """
    with mock.patch.dict(os.environ, env, clear=True):
        conf = load_target("spark").spark_settings()
    # A server whose defaults are not the spark target's, as a cluster's may be: another time zone, and Spark 4's
    # ANSI mode (on). The spark_thrift target's session settings must bring dbt's sessions back to both.
    conf["spark.sql.session.timeZone"] = SERVER_TIME_ZONE
    command = [str(_spark_submit()), "--class", SERVER_CLASS, "--master", conf.pop("spark.master", "local[2]")]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    hiveconf = {"hive.server2.thrift.bind.host": HOST, "hive.server2.authentication": auth}
    if keystore is None:
        hiveconf["hive.server2.thrift.port"] = str(port)
    else:
        hiveconf |= {
            "hive.server2.transport.mode": "http",
            "hive.server2.thrift.http.port": str(port),
            "hive.server2.thrift.http.path": _http_path().lstrip("/"),
            "hive.server2.use.SSL": "true",
            "hive.server2.keystore.path": str(keystore[0]),
            "hive.server2.keystore.password": keystore[1],
        }
    for key, value in hiveconf.items():
        command += ["--hiveconf", f"{key}={value}"]
    return command


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server's process group: SIGTERM (Spark's shutdown hooks), then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _log_tail(log: Path, lines: int = 60) -> str:
    text = log.read_text(errors="replace") if log.is_file() else ""
    return "\n".join(text.splitlines()[-lines:])


def _wait_until_listening(proc: subprocess.Popen[bytes], server: ThriftServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(
                f"the Spark Thrift server exited with status {proc.returncode} before listening on "
                f"{HOST}:{server.port}; the end of its log {server.log}:\n{_log_tail(server.log)}"
            )
        with contextlib.suppress(OSError), socket.create_connection((HOST, server.port), timeout=1):
            return
        if time.monotonic() > deadline:
            _stop(proc)
            pytest.fail(
                f"the Spark Thrift server did not listen on {HOST}:{server.port} within {STARTUP_TIMEOUT} s; the end "
                f"of its log {server.log}:\n{_log_tail(server.log)}"
            )
        time.sleep(0.5)


@pytest.fixture(scope="module")
def thrift_server() -> Iterator[Callable[..., contextlib.AbstractContextManager[ThriftServer]]]:
    """Start a Spark Thrift server for a block: ``with thrift_server(env, folder, auth) as server: ...``.

    The server runs in a session of its own (its process group: spark-submit, the launcher, the JVM), waits for its
    port with a timeout and fails with its log's tail when it does not come up; it is stopped when the block ends,
    and any left running when the module's tests end. With ``over_http=True`` it takes HTTP over TLS, with a key and
    certificate made for it in ``folder``.
    """
    started: list[subprocess.Popen[bytes]] = []

    @contextlib.contextmanager
    def serve(env: dict[str, str], folder: Path, auth: str, *, over_http: bool = False) -> Iterator[ThriftServer]:
        folder.mkdir(parents=True, exist_ok=True)
        number = len(started) + 1
        keystore, certificate = None, None
        if over_http:
            path, password, certificate = _self_signed_keystore(folder / f"tls-{number}")
            keystore = (path, password)
        server = ThriftServer(
            port=_free_port(), auth=auth, log=folder / f"thrift-server-{number}.log", certificate=certificate
        )
        with open(server.log, "wb") as log:
            proc = subprocess.Popen(
                _server_command(env, server.port, auth, keystore),
                cwd=folder,  # anything Spark or Derby writes beside it stays in the scratch folder
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(proc)
        try:
            _wait_until_listening(proc, server)
            yield server
        finally:
            _stop(proc)

    yield serve
    for proc in started:
        _stop(proc)


@pytest.fixture(scope="module")
def duckdb_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A generated sample through ``insiders run`` on DuckDB, training and pinning the model the Spark side uses."""
    from insiders.sample import generate_sample

    folder = tmp_path_factory.mktemp("spark_thrift")
    sample = generate_sample(folder / "sample.csv.gz", customers=500, months=13, seed=11).path
    env = _env(folder)
    _insiders(env, "run", "--target", "local", "--source", str(sample), "--train-if-unpinned")
    return {"folder": folder, "env": env, "sample": sample}


def _build(server: ThriftServer, env: dict[str, str], *selection: str) -> str:
    """``dbt build <selection>`` on the spark_thrift target pointed at ``server``, without unit tests; its output."""
    proc = run_dbt(
        "build",
        *selection,
        "--exclude-resource-type",
        "unit_test",
        target="spark_thrift",
        env={**env, **server.profile_env()},
    )
    return proc.stdout


def _dbt_session(server: ThriftServer, env: dict[str, str]) -> list[dict[str, object]]:
    """What dbt's own sessions through ``server`` are set to: their time zone, and 1 / 0 (null with ANSI off)."""
    shown = run_dbt(
        "show",
        "--inline",
        "select current_timezone() as time_zone, 1 / 0 as ratio",
        "--output",
        "json",
        target="spark_thrift",
        env={**env, **server.profile_env()},
    ).stdout
    return list(json.loads(shown[shown.index("{") : shown.rindex("}") + 1])["show"])


@pytest.fixture(scope="module")
def features_through_thrift(duckdb_run, thrift_server) -> dict[str, object]:
    """Load on the spark target, then the features step built and read back through a Thrift server (auth NONE)."""
    env, folder = duckdb_run["env"], duckdb_run["folder"]
    _insiders(env, "load", str(duckdb_run["sample"]), "--target", "spark")
    with thrift_server(env, folder / "thrift", "NONE") as server:
        session = _dbt_session(server, env)
        output = _build(server, env, "--selector", "features")
        frames = {name: server.frame(f"select * from analytics.{name}") for name in FEATURES}
        tables = server.frame("show tables in analytics")
    return {"session": session, "output": output, "frames": frames, "tables": tables}


@pytest.fixture(scope="module")
def marts_through_thrift(duckdb_run, features_through_thrift, thrift_server) -> dict[str, object]:
    """Scoring on the spark target, then the segments step built and read back through a NOSASL Thrift server."""
    env, folder = duckdb_run["env"], duckdb_run["folder"]
    scored = _insiders(env, "score", "--target", "spark", "--quiet")
    with thrift_server(env, folder / "thrift", "NOSASL") as server:
        output = _build(server, env, "--selector", "segments")
        frames = {name: server.frame(f"select * from analytics_marts.{name}") for name in MARTS}
    return {"scored": scored.stdout, "output": output, "frames": frames}


@pytest.fixture(scope="module")
def features_through_http(duckdb_run, features_through_thrift, thrift_server) -> dict[str, object]:
    """The features' two tables dropped, then built again by dbt's http method through a server in HTTP mode.

    The server (authentication NONE: any token) takes HTTP over TLS with a self-signed certificate that only the
    test's connections and dbt's process trust; the tables are read back through it. Before the build, the
    test's own connections check that the server refuses a client that does not trust the certificate and
    has no Thrift service at another cluster's path or at the root (a POST there gets 405 Method Not Allowed),
    so that what follows goes through that path over TLS.
    """
    env, folder = duckdb_run["env"], duckdb_run["folder"]
    with thrift_server(env, folder / "thrift", "NONE", over_http=True) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            server.connect(context=ssl.create_default_context())  # the system's certificates only
        elsewhere = {path: server.http_status(path) for path in (_http_path(cluster="another-cluster"), "/")}
        for name in FEATURES:
            server.execute(f"drop table analytics.{name}")
        dropped = server.frame("show tables in analytics")
        session = _dbt_session(server, env)
        output = _build(server, env, "--select", *FEATURES)
        frames = {name: server.frame(f"select * from analytics.{name}") for name in FEATURES}
        tables = server.frame("show tables in analytics")
    return {
        "elsewhere": elsewhere,
        "dropped": dropped,
        "session": session,
        "output": output,
        "frames": frames,
        "tables": tables,
    }


def _assert_duckdb_s_features(env: dict[str, str], built: dict[str, object]) -> None:
    """A features build's output, tables and values against DuckDB's: both tables, the same customers and values."""
    assert built["session"] == [{"time_zone": "UTC", "ratio": None}]
    output = built["output"]
    assert "Completed successfully" in output, output[-4000:]
    assert "ERROR=0" in output and "PASS=" in output, output[-4000:]
    tables = set(built["tables"]["tableName"])
    assert set(FEATURES) <= tables, tables
    frames = built["frames"]

    local_features = _duckdb_frame(env, "select * from main.customer_features")
    assert len(local_features) > 400
    _assert_same_values(local_features, frames["customer_features"], "customer_id")

    local_inputs = _duckdb_frame(env, "select * from main.customer_value_inputs")
    assert len(local_inputs) == len(local_features)
    _assert_same_values(local_inputs, frames["customer_value_inputs"], "customer_id")


def test_dbt_builds_the_features_through_thrift_with_duckdb_s_values(duckdb_run, features_through_thrift):
    _assert_duckdb_s_features(duckdb_run["env"], features_through_thrift)


def test_scoring_reads_what_thrift_built_and_dbt_builds_the_marts_through_thrift(duckdb_run, marts_through_thrift):
    env = duckdb_run["env"]
    assert "Scored" in marts_through_thrift["scored"], marts_through_thrift["scored"]
    output = marts_through_thrift["output"]
    assert "Completed successfully" in output, output[-4000:]
    frames = marts_through_thrift["frames"]
    for name, keys in MARTS.items():
        local = _duckdb_frame(env, f"select * from main_marts.{name}")
        assert len(local) > 0, name
        try:
            _assert_same_rows(local, frames[name], keys)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc
    assert frames["insiders"]["customer_id"].nunique() == int(frames["insiders_summary"]["insiders"][0]) > 0


def test_dbt_builds_the_features_again_through_http_with_duckdb_s_values(duckdb_run, features_through_http):
    assert set(features_through_http["elsewhere"].values()) == {405}, features_through_http["elsewhere"]
    dropped = set(features_through_http["dropped"]["tableName"])
    assert not dropped & set(FEATURES), dropped
    output = features_through_http["output"]
    assert "Done. PASS=" in output and " SKIP=0 " in output, output[-4000:]
    for name in FEATURES:
        assert f"OK created sql table model analytics.{name}" in output, output[-4000:]
    _assert_duckdb_s_features(duckdb_run["env"], features_through_http)
