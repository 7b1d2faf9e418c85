"""Plumbing shared by the model's modules, no modelling: one native thread, and the module path pickles record."""

from __future__ import annotations

import functools

from threadpoolctl import threadpool_limits

#: the module path under which artifacts name the pickled classes and functions (``insiders.model.SegmentModel``)
PACKAGE = "insiders.model"


def pickled_as_package(obj):
    """Record ``obj`` (a class or function) as defined in :data:`PACKAGE`, which re-exports it.

    A pickle names a class or function by its ``__module__`` and qualified name. Artifacts in model stores name
    ``insiders.model.SegmentModel``, ``insiders.model.signed_log1p``, … from the days when the model was one
    module; with this the objects keep those names wherever in the package they are defined, so new artifacts
    are byte for byte what the single module wrote, and the package's layout can change without touching any
    artifact. Every object marked so must be importable from :data:`PACKAGE` (its ``__init__`` re-exports them);
    pickling checks that the name leads back to the same object. numpy does the same for its public functions.
    """
    obj.__module__ = PACKAGE
    return obj


def single_threaded(func):
    """Run ``func`` with native thread pools (OpenMP, BLAS) limited to one thread.

    On these small dense problems KMeans is many times faster this way, and results do not depend on the machine's
    core count (floating-point sums split over threads can differ in the last bits and flip a label). The forest
    still uses ``n_jobs`` processes' worth of joblib threads, which does not change its result.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=1):
            return func(*args, **kwargs)

    return wrapper
