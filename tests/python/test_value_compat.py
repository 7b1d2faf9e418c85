"""Stored value models keep working: a version saved by earlier code loads, verified, and scores as it did then.

The fixture under ``fixtures/value_compat/`` is a customer-value model version as ``insiders value train --promote``
stored it (artifact, manifest, card and pin), with the inputs it was fitted on and what it predicted for them;
``fixtures/value_compat/make_fixture.py`` says how it was made. A change of :class:`ValueModel` (a new attribute, a
moved module) must keep such versions loading and predicting as they did.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from insiders.artifacts import LocalStore
from insiders.registry import VALUE, load_pinned, read_pin
from insiders.value.model import ValueModel

FIXTURE = Path(__file__).parent / "fixtures" / "value_compat"


@pytest.fixture
def fixture_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStore:
    """The fixture's pin in force and a copy of its store (loading must not be able to touch the fixture)."""
    monkeypatch.setenv("INSIDERS_PIN_FILE", str(FIXTURE / "pinned_model.yml"))
    for suffix in ("VERSION", "SHA256", "MANIFEST_SHA256"):
        monkeypatch.delenv(f"INSIDERS_VALUE_MODEL_{suffix}", raising=False)
    monkeypatch.delenv("INSIDERS_ARTIFACT_URI", raising=False)
    shutil.copytree(FIXTURE / "store", tmp_path / "store")
    return LocalStore(tmp_path / "store")


def test_a_stored_value_model_loads_through_the_verified_path_and_predicts_as_recorded(fixture_store) -> None:
    loaded = load_pinned(fixture_store, kind=VALUE)  # manifest and artifact digests, then unpickling
    assert loaded.pin.version == read_pin(kind=VALUE).version
    assert isinstance(loaded.model, ValueModel)
    inputs = pd.read_parquet(FIXTURE / "inputs.parquet")
    expected = pd.read_csv(FIXTURE / "predictions.csv")
    predicted = loaded.model.predict(inputs, 90)
    # To the last few bits, not bit for bit: the special functions of BG/NBD round in the last bit differently on
    # another processor model (1e-15 relative seen, same libraries); a change of the model moves them far more.
    pd.testing.assert_frame_equal(
        predicted.reset_index(drop=True), expected, check_dtype=False, check_exact=False, rtol=1e-12, atol=0
    )
