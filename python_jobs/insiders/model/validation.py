"""Checks of a customer feature table before it is trained on or scored, and its canonical row order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from insiders.model.config import ID_COLUMN


def _is_number_dtype(dtype) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _is_integer_dtype(dtype) -> bool:
    return pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _customers(n: int) -> str:
    return f"{n:,} customer" + ("" if n == 1 else "s")


def validate_features(
    df: pd.DataFrame,
    feature_names: Sequence[str],
    dtypes: Mapping[str, str] | None = None,
    *,
    id_column: str = ID_COLUMN,
    allow_extra: bool = False,
) -> None:
    """Raise ``ValueError`` describing everything wrong with a customer feature table; return None when it is fine.

    Checks: the id column and every feature are present; no other column (unless ``allow_extra``); each feature is
    a number column (booleans, text and objects are not; a float column where an integer was trained is accepted
    only when its values are whole numbers); no NULL and no infinite value; no repeated customer id. Counts of
    affected customers are given per problem and per column.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"customer features must be a pandas DataFrame, got {type(df).__name__}")
    features = list(feature_names)
    expected = [id_column, *features]
    problems: list[str] = []

    missing = [c for c in expected if c not in df.columns]
    if missing:
        problems.append("missing columns: " + ", ".join(missing))
    if not allow_extra:
        extra = [str(c) for c in df.columns if c not in expected]
        if extra:
            problems.append("unexpected columns: " + ", ".join(extra))
    duplicated_columns = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
    if duplicated_columns:
        problems.append("repeated columns: " + ", ".join(duplicated_columns))

    present = [c for c in features if c in df.columns and c not in duplicated_columns]
    numeric = []
    for col in present:
        dtype = df[col].dtype
        want = (dtypes or {}).get(col)
        want_text = f" (trained as {want})" if want else ""
        if not _is_number_dtype(dtype):
            problems.append(f"column {col} has type {dtype}, expected a number{want_text}")
            continue
        numeric.append(col)
        if want is not None and _is_integer_dtype(pd.api.types.pandas_dtype(want)) and not _is_integer_dtype(dtype):
            values = df[col].to_numpy(dtype=float, na_value=np.nan)
            finite = values[np.isfinite(values)]
            fractional = int(np.count_nonzero(finite != np.round(finite)))
            if fractional:
                problems.append(
                    f"column {col} has type {dtype} with {_customers(fractional)} holding fractions, "
                    f"expected whole numbers{want_text}"
                )

    if numeric:
        values = np.column_stack([df[c].to_numpy(dtype=float, na_value=np.nan) for c in numeric])
        null = np.column_stack([df[c].isna().to_numpy() for c in numeric])
        infinite = np.isinf(values)
        for mask, what in ((null, "NULL"), (infinite, "infinite")):
            rows = int(mask.any(axis=1).sum())
            if rows:
                per_column = ", ".join(f"{c}: {int(n):,}" for c, n in zip(numeric, mask.sum(axis=0), strict=True) if n)
                problems.append(f"{_customers(rows)} with {what} values ({per_column})")

    if id_column in df.columns and id_column not in duplicated_columns:
        ids = df[id_column]
        if ids.isna().any():
            problems.append(f"{_customers(int(ids.isna().sum()))} without a {id_column}")
        repeated = int(ids.dropna().duplicated().sum())
        if repeated:
            problems.append(f"{repeated:,} repeated {id_column} values")

    if problems:
        raise ValueError(f"customer features are not valid ({len(df):,} rows): " + "; ".join(problems))


def _canonical(features: pd.DataFrame) -> pd.DataFrame:
    """Customers sorted by id: training does not depend on the order in which the warehouse returned the rows."""
    return features.sort_values(ID_COLUMN, kind="stable").reset_index(drop=True)
