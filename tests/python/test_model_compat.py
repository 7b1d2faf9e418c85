"""Stored models keep working: a version saved by earlier code loads, verified, and scores as it did then.

The fixture under ``fixtures/model_compat/`` is a model version as ``insiders train --promote`` stores it (artifact,
manifest, model card and pin), trained on 300 generated customers by the code of the day, with the labels that
model gave them; ``fixtures/model_compat/make_fixture.py`` says how it was made. Pickled artifacts name classes and
functions by module path (``insiders.model.SegmentModel``, ``insiders.model.signed_log1p``, ...): moving the model
code must keep those names importable, or every model in every store stops loading.
"""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import insiders.model
from insiders.artifacts import LocalStore
from insiders.model import SegmentModel
from insiders.registry import library_versions, load_pinned, read_pin

FIXTURE = Path(__file__).parent / "fixtures" / "model_compat"


@pytest.fixture
def fixture_pin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStore:
    """The fixture's pin in force and a copy of its store (loading must not be able to touch the fixture)."""
    monkeypatch.setenv("INSIDERS_PIN_FILE", str(FIXTURE / "pinned_model.yml"))
    for name in ("INSIDERS_MODEL_VERSION", "INSIDERS_MODEL_SHA256", "INSIDERS_MODEL_MANIFEST_SHA256"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("INSIDERS_ARTIFACT_URI", raising=False)
    shutil.copytree(FIXTURE / "store", tmp_path / "store")
    return LocalStore(tmp_path / "store")


@pytest.mark.parametrize("obj", insiders.model._PICKLED, ids=lambda obj: obj.__qualname__)
def test_what_artifacts_pickle_is_named_by_the_package_path(obj) -> None:
    """New artifacts name these objects as old ones do, and the name leads back to the same object."""
    assert f"{obj.__module__}.{obj.__qualname__}" == f"insiders.model.{obj.__qualname__}"
    assert getattr(insiders.model, obj.__qualname__) is obj
    assert pickle.loads(pickle.dumps(obj)) is obj


def _features() -> pd.DataFrame:
    return pd.read_parquet(FIXTURE / "features.parquet")


def test_a_stored_model_loads_through_the_verified_path_and_gives_its_recorded_labels(fixture_pin) -> None:
    loaded = load_pinned(fixture_pin)  # manifest digest, manifest content, artifact digest, then unpickling
    assert loaded.pin.version == read_pin().version
    assert isinstance(loaded.model, SegmentModel)
    expected = pd.read_csv(FIXTURE / "labels.csv", dtype={"segment_name": object})
    scored = loaded.model.predict(_features())
    pd.testing.assert_frame_equal(scored.reset_index(drop=True), expected, check_dtype=False)
    assert scored["is_insider"].any() and scored["segment_rank"].nunique() == loaded.model.k


#: trains the fixture's data with the configuration its manifest records; prints the artifact's sha256, and
#: writes the labels the new model gives the fixture's customers to the Parquet file named by argv[3]
_REFIT = """
import hashlib, json, sys
import pandas as pd
from insiders.model import ModelConfig, fit_model
from insiders.registry import dump_model
features = pd.read_parquet(sys.argv[2])
model = fit_model(features, ModelConfig(**json.loads(sys.argv[1]))).model
model.predict(features).reset_index(drop=True).to_parquet(sys.argv[3])
print(hashlib.sha256(dump_model(model)).hexdigest())
"""


def test_training_the_fixture_data_again_gives_the_same_model(fixture_pin, tmp_path: Path) -> None:
    """Same data, same configuration, same libraries: the same segments as the stored model, and, on one machine,
    the same artifact bytes from one training to the next (what lets training reuse a stored version).

    The bytes are compared between two trainings on the machine running the test, not with the fixture's digest:
    the floating-point sums of the forest and of k-means may round differently on another CPU (the fixture's
    digest was not reproduced on a different processor model, with the same libraries, while its labels were).
    Each training runs in a new interpreter, as ``insiders train`` does: pickle writes a string once and refers
    back to it when the same string object comes again, so what a process has unpickled before (the other test
    here loads a model) can change which attribute names are one object and so the bytes, though not what they
    load to.
    """
    loaded = load_pinned(fixture_pin)
    if loaded.manifest["libraries"] != library_versions():
        pytest.skip(
            f"the fixture was made with {loaded.manifest['libraries']}, this environment has {library_versions()}"
        )
    digests = []
    for attempt in range(2):
        labels = tmp_path / f"labels-{attempt}.parquet"
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                _REFIT,
                json.dumps(loaded.manifest["config"]),
                str(FIXTURE / "features.parquet"),
                str(labels),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        digests.append(proc.stdout.strip())
        expected = pd.read_csv(FIXTURE / "labels.csv", dtype={"segment_name": object})
        pd.testing.assert_frame_equal(pd.read_parquet(labels), expected, check_dtype=False)
    assert len(digests[0]) == 64 and digests[0] == digests[1]
