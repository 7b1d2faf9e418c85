"""How stable the Insiders are: Jaccard of the Insiders sets of models trained with other seeds and on samples."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from insiders.model.checks import BusinessCheck, business_checks, failed_checks
from insiders.model.config import TARGET, ModelConfig
from insiders.model.fitting import _build_model
from insiders.model.ranking import _mask_jaccard
from insiders.model.selection import _STABILITY_SAMPLE_STREAM, _random_row_subset, select_model
from insiders.model.support import single_threaded
from insiders.model.validation import _canonical, validate_features


@dataclass
class StabilityReport:
    """How much the Insiders membership moves when the model is retrained with other seeds or on samples."""

    k: int
    customers: int
    insiders_customers: int
    insiders_share: float
    insiders_mean_revenue: float
    insiders_revenue_share: float
    silhouette_embedded: float
    seed_pairs: list[tuple[int, int, float]] = field(default_factory=list)
    sample_runs: list[tuple[int, int, float]] = field(default_factory=list)  # (sample number, insiders, jaccard)
    seconds: float = 0.0
    #: the business checks of the full model's Insiders
    checks: list[BusinessCheck] = field(default_factory=list)

    @property
    def seed_jaccards(self) -> list[float]:
        return [j for _, _, j in self.seed_pairs]

    @property
    def sample_jaccards(self) -> list[float]:
        return [j for _, _, j in self.sample_runs]

    def summary(self) -> dict[str, float]:
        s, p = self.seed_jaccards, self.sample_jaccards
        return {
            "jaccard_seeds_median": float(np.median(s)) if s else float("nan"),
            "jaccard_seeds_min": float(np.min(s)) if s else float("nan"),
            "jaccard_samples_median": float(np.median(p)) if p else float("nan"),
            "jaccard_samples_min": float(np.min(p)) if p else float("nan"),
        }

    def passes(self, min_median: float = 0.9, min_jaccard: float = 0.8) -> bool:
        """True when both medians reach ``min_median`` and both minimums reach ``min_jaccard``."""
        s = self.summary()
        return all(
            s[f"jaccard_{kind}_median"] >= min_median and s[f"jaccard_{kind}_min"] >= min_jaccard
            for kind in ("seeds", "samples")
        )

    def shortcomings(self, config: ModelConfig) -> list[str]:
        """What falls short of the configuration's bars: stability figures and failed business checks."""
        s = self.summary()
        bars = [
            ("seeds", "median", config.min_median_jaccard),
            ("seeds", "min", config.min_seed_jaccard),
            ("samples", "median", config.min_median_jaccard),
            ("samples", "min", config.min_jaccard),
        ]
        out = [
            f"Jaccard {kind} {stat} {s[f'jaccard_{kind}_{stat}']:.3f} < {bar:.2f}"
            for kind, stat, bar in bars
            if s[f"jaccard_{kind}_{stat}"] < bar
        ]
        return out + [c.to_text() for c in failed_checks(self.checks)]

    def to_frame(self) -> pd.DataFrame:
        """One row per comparison: kind (seeds/sample), what was compared, Jaccard of the Insiders sets."""
        rows = [
            {"comparison": "seeds", "a": f"seed {a}", "b": f"seed {b}", "jaccard": j} for a, b, j in self.seed_pairs
        ]
        rows += [
            {"comparison": "sample", "a": "full model", "b": f"sample {i} ({n:,} insiders)", "jaccard": j}
            for i, n, j in self.sample_runs
        ]
        return pd.DataFrame(rows, columns=["comparison", "a", "b", "jaccard"])

    def to_text(self) -> str:
        s = self.summary()
        return "\n".join(
            [
                f"Insiders stability (k={self.k}, {self.customers:,} customers, {self.seconds:.0f} s)",
                f"  Insiders: {self.insiders_customers:,} customers ({self.insiders_share:.1%}), "
                f"mean spend {self.insiders_mean_revenue:,.2f}, {self.insiders_revenue_share:.1%} of revenue",
                f"  silhouette in the clustering space (PCA of the forest embedding): {self.silhouette_embedded:.3f}",
                f"  Jaccard across seeds ({len(self.seed_pairs)} pairs): median {s['jaccard_seeds_median']:.3f}, "
                f"min {s['jaccard_seeds_min']:.3f}",
                f"  Jaccard full model vs models trained on samples ({len(self.sample_runs)}): "
                f"median {s['jaccard_samples_median']:.3f}, min {s['jaccard_samples_min']:.3f}",
                *(["Business checks of the Insiders:"] if self.checks else []),
                *(f"  {c.to_text()}" for c in self.checks),
            ]
        )


@single_threaded
def stability(
    features: pd.DataFrame,
    config: ModelConfig | None = None,
    seeds: int = 5,
    samples: int = 5,
    sample_fraction: float | None = None,
) -> StabilityReport:
    """Jaccard of the Insiders sets (a) between the model trained with ``config.seed`` and ``seeds`` models trained
    with other seeds, all pairs; (b) between that full model and ``samples`` models trained with the same seed on
    random samples of ``sample_fraction`` (default ``config.sample_fraction``) of the customers, applied to ALL
    customers. k is ``config.k`` or, when unset, chosen once by :func:`select_model` on all customers. The seeds
    and samples differ from those model selection uses."""
    started = time.perf_counter()
    config = config or ModelConfig()
    validate_features(features, config.features, allow_extra=True)
    fraction = config.sample_fraction if sample_fraction is None else sample_fraction
    k = config.k if config.k is not None else select_model(features, config)[0]
    features = _canonical(features)
    revenue = features[TARGET].to_numpy(dtype=float)

    base, _ = _build_model(features, config, k, config.seed)
    masks = {config.seed: base.predict(features)["is_insider"].to_numpy()}
    for i in range(1, seeds + 1):
        seed = config.seed + i
        model, _ = _build_model(features, config, k, seed)
        masks[seed] = model.predict(features)["is_insider"].to_numpy()
    seed_pairs = [(a, b, _mask_jaccard(masks[a], masks[b])) for a, b in combinations(masks, 2)]

    rng = np.random.default_rng([config.seed, _STABILITY_SAMPLE_STREAM])
    sample_runs = []
    for i in range(1, samples + 1):
        rows = _random_row_subset(len(features), fraction, rng)
        model, _ = _build_model(features.iloc[rows], config, k, config.seed)
        mask = model.predict(features)["is_insider"].to_numpy()
        sample_runs.append((i, int(mask.sum()), _mask_jaccard(masks[config.seed], mask)))

    insiders = masks[config.seed]
    total = revenue.sum()
    return StabilityReport(
        k=k,
        customers=len(features),
        insiders_customers=int(insiders.sum()),
        insiders_share=float(insiders.mean()),
        insiders_mean_revenue=float(revenue[insiders].mean()) if insiders.any() else float("nan"),
        insiders_revenue_share=float(revenue[insiders].sum() / total) if total else float("nan"),
        silhouette_embedded=base.silhouette_embedded,
        seed_pairs=seed_pairs,
        sample_runs=sample_runs,
        seconds=time.perf_counter() - started,
        checks=business_checks(features, insiders, config),
    )
