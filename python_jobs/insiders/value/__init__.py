"""Predicted customer value beside every segment: BG/NBD + Gamma-Gamma (docs/value.md).

* :mod:`insiders.value.model`: the fitted parameters, the closed-form predictions, the fit (PyMC-Marketing);
* :mod:`insiders.value.training`: ``insiders value train`` — fit, store a versioned artifact, pin it;
* :mod:`insiders.value.apply`: ``insiders value score`` and the ``value`` step of ``insiders run`` — apply the
  pinned model and replace ``customer_value`` in one transaction;
* :mod:`insiders.value.backtest`: ``insiders value backtest`` — fit up to a cut-off day, compare with what happened.
"""

#: The horizon of the scheduled run's value step, in days (read by the step and by the run's "nothing new" check).
HORIZON_ENV = "INSIDERS_VALUE_HORIZON_DAYS"
