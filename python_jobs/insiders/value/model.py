"""The customer-value model: BG/NBD (purchases, P(alive)) and Gamma-Gamma (spend per purchase).

Fitting uses PyMC-Marketing (the optional ``[value]`` group): maximum a posteriori by default, full sampling as an
option. What is kept is :class:`ValueModel`, the fitted parameters, and it predicts with the models' closed-form
expressions (numpy and scipy only), so applying a stored model needs neither PyMC nor a compiler, and its
predictions equal PyMC-Marketing's (tests/python/test_value.py checks them against each other).

Time is counted in days. Per customer, as of the reference day: ``frequency`` = repeat purchases (purchase days
- 1), ``recency`` = days from the first to the last purchase, ``t`` = days from the first purchase to the
reference day, ``monetary_value`` = mean spend of the repeat purchases (customer_value_inputs).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import hyp2f1

from insiders.errors import InsidersError

INPUTS_TABLE = "customer_value_inputs"
FEATURES = ("frequency", "recency", "t", "monetary_value")
DEFAULT_HORIZON_DAYS = 90
DEFAULT_SEED = 42
FIT_METHODS = ("map", "sample")
#: fewer customers with a repeat purchase than this and neither model can be fitted meaningfully
MIN_REPEAT_CUSTOMERS = 10
GROUP_HINT = "pip install -c constraints.txt -e '.[value]'"


class ValueInputError(InsidersError):
    """The inputs of the customer-value model are unusable (missing, empty, inconsistent)."""


class ValueGroupMissingError(InsidersError):
    """PyMC-Marketing (the ``[value]`` group) is not installed."""


def value_group_installed() -> bool:
    """Whether the optional ``[value]`` group (PyMC-Marketing) can be imported."""
    import importlib.util

    return importlib.util.find_spec("pymc_marketing") is not None


def require_value_group(what: str = "fitting the customer-value model") -> None:
    if not value_group_installed():
        raise ValueGroupMissingError(
            f"{what} needs the optional [value] dependency group (PyMC-Marketing), which is not installed: "
            f"{GROUP_HINT}. The rest of the pipeline works without it."
        )


def check_horizon(horizon_days: Any) -> float:
    """The horizon as a positive, finite number of days; a clear error otherwise."""
    try:
        value = float(horizon_days)
    except (TypeError, ValueError):
        raise ValueInputError(f"the horizon must be a number of days, got {horizon_days!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueInputError(f"the horizon must be a positive number of days, got {horizon_days!r}")
    return value


def validate_inputs(frame: pd.DataFrame, what: str = INPUTS_TABLE) -> pd.DataFrame:
    """The inputs as floats, ordered by customer; raises :class:`ValueInputError` naming every problem."""
    missing = [c for c in ("customer_id", *FEATURES) if c not in frame.columns]
    if missing:
        raise ValueInputError(f"{what} has no column(s) {', '.join(missing)}")
    if frame.empty:
        raise ValueInputError(f"{what} is empty: load data and run `dbt build --selector features` first")
    out = frame.copy()
    for name in FEATURES:
        out[name] = pd.to_numeric(out[name], errors="coerce").astype(float)
    out["customer_id"] = out["customer_id"].astype("int64")
    out = out.sort_values("customer_id", kind="stable").reset_index(drop=True)
    problems = []
    if out["customer_id"].duplicated().any():
        problems.append(f"{int(out['customer_id'].duplicated().sum()):,} repeated customer_id(s)")
    for name in ("frequency", "recency", "t"):
        bad = ~np.isfinite(out[name].to_numpy())
        if bad.any():
            problems.append(f"{int(bad.sum()):,} null or non-finite {name}")
    f, r, t = (out[c].to_numpy() for c in ("frequency", "recency", "t"))
    with np.errstate(invalid="ignore"):
        if ((f < 0) | (f != np.floor(f))).any():
            problems.append("frequency must be a whole number >= 0")
        if ((r < 0) | (r > t)).any():
            problems.append(f"{int(((r < 0) | (r > t)).sum()):,} customer(s) with recency outside [0, t]")
        if ((f == 0) & (r != 0)).any():
            problems.append("a customer without a repeat purchase must have recency 0")
        m = out["monetary_value"].to_numpy()
        if ((f > 0) & ~np.isfinite(m)).any():
            problems.append(f"{int(((f > 0) & ~np.isfinite(m)).sum()):,} repeat buyer(s) without a monetary_value")
    if problems:
        raise ValueInputError(f"{what} is refused: " + "; ".join(problems))
    return out


def _log_delta(x: np.ndarray, tx: np.ndarray, big_t: np.ndarray, r: float, alpha: float, a: float, b: float):
    """log of a/(b+x-1) * ((alpha+T)/(alpha+tx))^(r+x) for repeat buyers (x > 0); -inf for the others."""
    out = np.full(x.shape, -np.inf)
    rep = x > 0
    xr = x[rep]
    out[rep] = math.log(a) - np.log(b + xr - 1) + (r + xr) * (np.log(alpha + big_t[rep]) - np.log(alpha + tx[rep]))
    return out


@dataclass(frozen=True)
class ValueModel:
    """Fitted BG/NBD (r, alpha, a, b) and Gamma-Gamma (p, q, v) parameters, and the closed-form predictions."""

    r: float
    alpha: float
    a: float
    b: float
    p: float
    q: float
    v: float

    @property
    def features(self) -> list[str]:
        return list(FEATURES)

    def check(self) -> None:
        """Refuse parameters for which the expectations are infinite or undefined."""
        values = {k: getattr(self, k) for k in ("r", "alpha", "a", "b", "p", "q", "v")}
        bad = [f"{k}={v!r}" for k, v in values.items() if not (math.isfinite(v) and v > 0)]
        if bad:
            raise ValueInputError(f"the fitted parameters must be positive and finite: {', '.join(bad)}")
        # The horizon expectations are finite for any a > 0; a = 1 is a removable singularity of the closed form.
        if abs(self.a - 1) < 1e-9:
            raise ValueInputError(f"BG/NBD a={self.a!r} is 1 to 9 digits: the closed form is singular there; refit")
        if self.q <= 1:
            raise ValueInputError(f"Gamma-Gamma q={self.q:.4g} <= 1: expected spend is infinite; refit")

    def _arrays(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        frequency, recency, age = (frame[c].to_numpy(dtype=float) for c in ("frequency", "recency", "t"))
        return frequency, recency, age

    def p_alive(self, frame: pd.DataFrame) -> np.ndarray:
        """P(the customer is still active) on the reference day; 1 for a customer without a repeat purchase."""
        x, tx, big_t = self._arrays(frame)
        return 1.0 / (1.0 + np.exp(_log_delta(x, tx, big_t, self.r, self.alpha, self.a, self.b)))

    def expected_purchases(self, frame: pd.DataFrame, horizon_days: float) -> np.ndarray:
        """Expected purchases in the ``horizon_days`` after the reference day (Fader, Hardie and Lee 2005, eq. 10).

        The hypergeometric term is taken through Euler's transformation,
        (1-z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z) = (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z),
        whose parameters do not grow with x: no overflow for frequent buyers.
        """
        h = check_horizon(horizon_days)
        x, tx, big_t = self._arrays(frame)
        z = h / (self.alpha + big_t + h)
        c = self.a + self.b + x - 1
        tail = (1 - z) ** (self.a - 1) * hyp2f1(self.a + self.b - 1 - self.r, self.a - 1, c, z)
        head = c / (self.a - 1) * (1 - tail)
        out = head / (1.0 + np.exp(_log_delta(x, tx, big_t, self.r, self.alpha, self.a, self.b)))
        if not np.isfinite(out).all():
            raise ValueInputError("expected purchases are not finite for some customers; check the inputs")
        return out

    def expected_spend(self, frame: pd.DataFrame) -> np.ndarray:
        """Expected spend per purchase: the Gamma-Gamma posterior mean, the population mean without repeats."""
        x = frame["frequency"].to_numpy(dtype=float)
        m = frame["monetary_value"].to_numpy(dtype=float)
        usable = (x > 0) & np.isfinite(m) & (m > 0)
        population = self.p * self.v / (self.q - 1)
        with np.errstate(invalid="ignore"):
            posterior = self.p * (self.v + x * np.where(usable, m, 0)) / (self.p * x + self.q - 1)
        return np.where(usable, posterior, population)

    def unconditional_purchases(self, t_days: np.ndarray) -> np.ndarray:
        """Expected repeat purchases of a new customer over ``t_days`` (the fit's goodness-of-fit check)."""
        t = np.asarray(t_days, dtype=float)
        z = t / (self.alpha + t)
        c = self.a + self.b - 1
        return c / (self.a - 1) * (1 - (1 - z) ** (self.a - 1) * hyp2f1(c - self.r, self.a - 1, c, z))

    def predict(self, frame: pd.DataFrame, horizon_days: float = DEFAULT_HORIZON_DAYS) -> pd.DataFrame:
        """Per customer: expected purchases, spend per purchase and revenue over the horizon, and P(alive)."""
        h = check_horizon(horizon_days)
        inputs = validate_inputs(frame)
        purchases = self.expected_purchases(inputs, h)
        spend = self.expected_spend(inputs)
        return pd.DataFrame(
            {
                "customer_id": inputs["customer_id"].to_numpy(),
                "expected_purchases": purchases,
                "expected_spend": spend,
                "expected_revenue": purchases * spend,
                "p_alive": self.p_alive(inputs),
            }
        )


@dataclass(frozen=True)
class FitResult:
    """A fitted model and what the fit says about itself."""

    model: ValueModel
    method: str
    seed: int
    seconds: float
    diagnostics: dict[str, Any] = field(default_factory=dict)


def _notice(line: str) -> None:
    import sys

    print(line, file=sys.stderr, flush=True)


def fit(
    frame: pd.DataFrame,
    method: str = "map",
    seed: int = DEFAULT_SEED,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
    notice: Callable[[str], None] = _notice,
) -> FitResult:
    """Fit BG/NBD on every customer and Gamma-Gamma on the repeat buyers with a positive mean spend.

    ``method`` ``map`` (default: deterministic, seconds) or ``sample`` (NUTS with ``seed``; the parameters kept are
    the posterior means, and the diagnostics include R-hat and effective sample sizes).
    """
    if method not in FIT_METHODS:
        raise ValueInputError(f"the fit method must be one of {', '.join(FIT_METHODS)}, got {method!r}")
    inputs = validate_inputs(frame)
    repeat = inputs["frequency"] > 0
    if int(repeat.sum()) < MIN_REPEAT_CUSTOMERS:
        raise ValueInputError(
            f"only {int(repeat.sum()):,} of {len(inputs):,} customers have a repeat purchase (at least "
            f"{MIN_REPEAT_CUSTOMERS} are needed): single-purchase customers alone say nothing about how often "
            "customers come back; fit on a longer history"
        )
    spend_ok = repeat & (inputs["monetary_value"] > 0)
    dropped = int((repeat & ~spend_ok).sum())
    if dropped:
        notice(
            f"notice: {dropped:,} repeat buyer(s) with a zero or negative mean spend are left out of the "
            "Gamma-Gamma fit (it models positive spend); they get the population's mean spend"
        )
    if int(spend_ok.sum()) < MIN_REPEAT_CUSTOMERS:
        raise ValueInputError(
            f"only {int(spend_ok.sum()):,} repeat buyers have a positive mean spend (at least "
            f"{MIN_REPEAT_CUSTOMERS} are needed for the Gamma-Gamma fit)"
        )
    require_value_group()
    import warnings

    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pymc_marketing.clv import BetaGeoModel, GammaGammaModel

        bg_data = pd.DataFrame(
            {
                "customer_id": inputs["customer_id"],
                "frequency": inputs["frequency"],
                "recency": inputs["recency"],
                "T": inputs["t"],
            }
        )
        gg_data = pd.DataFrame(
            {
                "customer_id": inputs.loc[spend_ok, "customer_id"],
                "frequency": inputs.loc[spend_ok, "frequency"],
                "monetary_value": inputs.loc[spend_ok, "monetary_value"],
            }
        ).reset_index(drop=True)
        bg = BetaGeoModel(data=bg_data)
        gg = GammaGammaModel(data=gg_data)
        if method == "map":
            bg.fit(method="map", progressbar=False)
            gg.fit(method="map", progressbar=False)
        else:
            options: dict[str, Any] = {"draws": draws, "tune": tune, "chains": chains, "cores": 1, "progressbar": False}
            bg.fit(method="mcmc", random_seed=seed, **options)
            gg.fit(method="mcmc", random_seed=seed + 1, **options)
    seconds = time.perf_counter() - started

    def mean(model: Any, name: str) -> float:
        return float(model.idata.posterior[name].mean().item())

    model = ValueModel(
        r=mean(bg, "r"),
        alpha=mean(bg, "alpha"),
        a=mean(bg, "a"),
        b=mean(bg, "b"),
        p=mean(gg, "p"),
        q=mean(gg, "q"),
        v=mean(gg, "v"),
    )
    model.check()
    diagnostics = fit_diagnostics(model, inputs, spend_ok.to_numpy())
    diagnostics["gamma_gamma_excluded_customers"] = dropped
    if method == "sample":
        diagnostics["sampling"] = _sampling_diagnostics(bg, gg)
    return FitResult(model=model, method=method, seed=seed, seconds=seconds, diagnostics=diagnostics)


def fit_diagnostics(model: ValueModel, inputs: pd.DataFrame, spend_ok: np.ndarray) -> dict[str, Any]:
    """Goodness-of-fit figures on the training customers.

    Repeat purchases: observed in total vs what the model expects for customers of the same ages (a new customer's
    expectation over each one's t). Spend: the observed mean of the repeat buyers' mean spend vs the model's
    population mean. P(alive): its mean and the share of customers below 0.5.
    """
    expected_repeats = float(model.unconditional_purchases(inputs["t"].to_numpy()).sum())
    observed_repeats = float(inputs["frequency"].sum())
    alive = model.p_alive(inputs)
    observed_spend = float(inputs.loc[spend_ok, "monetary_value"].mean())
    return {
        "customers": len(inputs),
        "repeat_customers": int((inputs["frequency"] > 0).sum()),
        "observed_repeat_purchases": observed_repeats,
        "expected_repeat_purchases": expected_repeats,
        "repeat_purchases_ratio": expected_repeats / observed_repeats if observed_repeats else None,
        "observed_mean_spend": observed_spend,
        "model_mean_spend": model.p * model.v / (model.q - 1),
        "mean_p_alive": float(alive.mean()),
        "share_p_alive_below_half": float((alive < 0.5).mean()),
    }


def _sampling_diagnostics(bg: Any, gg: Any) -> dict[str, Any]:
    import arviz as az

    out: dict[str, Any] = {}
    for label, fitted, names in (("bg_nbd", bg, ["r", "alpha", "a", "b"]), ("gamma_gamma", gg, ["p", "q", "v"])):
        summary = az.summary(fitted.idata, var_names=names)
        for name in names:
            row = summary.loc[name]  # type: ignore[index]  # an arviz summary is a DataFrame indexed by name
            out[f"{label}.{name}"] = {
                "mean": float(row["mean"]),
                "sd": float(row["sd"]),
                "r_hat": float(row["r_hat"]),
                "ess_bulk": float(row["ess_bulk"]),
            }
    return out
