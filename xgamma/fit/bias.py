"""Finite-sample bias of the fitted parameters: the first-order (Cox-Snell) bias of a Poisson MLE.

A maximum-likelihood estimate is unbiased only in the limit of many counts. To first order in
1/counts its bias is (Cox & Snell 1968, J. R. Stat. Soc. B 30, 248; for Poisson counts n_i of
mean mu_i(theta) the cumulants reduce to)

    b = -1/2 V g,    g_r = sum_i (d_r mu_i / mu_i) sum_tu V_tu d_t d_u mu_i,

with V the inverse of the expected (Fisher) information I_rt = sum_i d_r mu_i d_t mu_i / mu_i,
summed over the pixels of the fit mask. It is a property of the model and the exposure, not of
the fitting code: Gammapy's MLE has it too. It scales as 1/counts while the errors scale as
1/sqrt(counts), so ``b / error`` falls as 1/sqrt(livetime). A size is biased low (the predicted
counts are concave in it), a linear parameter is not biased by itself.

`finite_sample_bias` evaluates it at the best fit with 4 p + 1 predictions of the map (p free
parameters): central differences for d_r mu, and ``sum_tu V_tu d_t d_u mu`` as the second
differences along the p columns of a Cholesky factor of V. `xgamma.fit.fit` records it in
`FitResult.bias` (``fit.json``) and `check_bias` logs a warning where ``|b| > BIAS_TOLERANCE x error``:
the bound on the mean pull of issue 10 (docs/validation.md, "Pull studies").
"""

from __future__ import annotations

import logging
import math

import numpy as np

from xgamma.exceptions import XgammaError
from xgamma.fit.npred import npred_total
from xgamma.fit.statistic import Likelihood, model_parameters

__all__ = ["BIAS_TOLERANCE", "finite_sample_bias", "check_bias"]

#: Largest tolerated ``|bias| / error`` of a source parameter before `check_bias` logs a warning: the bound
#: on the mean pull of issue 10's pull studies.
BIAS_TOLERANCE = 0.1

#: Finite-difference steps in units of the parameter errors: first derivatives (central) and
#: second differences along the Cholesky columns of V (each a quarter of an error long: short
#: enough not to straddle the few places where a model's pixel integration changes its sampling).
_FIRST_STEP = 0.1
_SECOND_STEP = 0.25


def _predicted(likelihood: Likelihood, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    likelihood.set_values(values)
    return npred_total(likelihood.arrays, likelihood.models)[mask]


def finite_sample_bias(likelihood: Likelihood, errors: dict[str, float]) -> dict[str, dict[str, float]]:
    """First-order bias of every free parameter's MLE at the likelihood's current (best-fit) values.

    Parameters
    ----------
    likelihood : Likelihood
        At the best fit (its models' free parameters hold the fitted values; they are restored).
    errors : dict
        ``{"model.name": error}`` of the free parameters (the fit's HESSE errors): they set the
        finite-difference steps only.

    Returns
    -------
    dict
        ``{"model.name": {"bias": b, "ratio": b / error}}`` in the parameter's unit, where
        ``error`` is the square root of the diagonal of V (the expected-information error, which
        HESSE estimates). Empty when the information matrix is singular or the prediction is not
        positive where the fit looks (the bias is then unknown, not zero).
    """
    labels = likelihood.free_labels
    start = np.array([p.value for label, p in model_parameters(likelihood.models) if label in labels], dtype=float)
    steps = np.array([errors.get(label, 0.0) for label in labels], dtype=float)
    if not labels or not np.all(np.isfinite(steps) & (steps > 0)):
        return {}
    mask = likelihood.arrays.mask
    try:
        mu = _predicted(likelihood, start, mask)
        if not np.all(np.isfinite(mu)) or np.any(mu < 0):
            return {}
        # Pixels predicted empty in any evaluation (beyond a source's cutout, without background)
        # carry no information, and a cutout that grows with a size would fake a derivative there.
        used = mu > 0
        jacobian = np.empty((len(labels), mu.size))
        for r, h in enumerate(_FIRST_STEP * steps):
            shift = np.zeros_like(start)
            shift[r] = h
            up, down = _predicted(likelihood, start + shift, mask), _predicted(likelihood, start - shift, mask)
            used &= (up > 0) & (down > 0)
            jacobian[r] = (up - down) / (2 * h)
        jacobian, mu = jacobian[:, used], mu[used]
        covariance = np.linalg.inv((jacobian / mu) @ jacobian.T)
        factor = np.linalg.cholesky(covariance)
        curvature = np.zeros_like(mu)  # sum_tu V_tu d_t d_u mu per pixel
        inside = np.ones(mu.size, dtype=bool)
        for k in range(len(labels)):
            shift = _SECOND_STEP * factor[:, k]
            up = _predicted(likelihood, start + shift, mask)[used]
            down = _predicted(likelihood, start - shift, mask)[used]
            inside &= (up > 0) & (down > 0)
            curvature += (up - 2 * mu + down) / _SECOND_STEP**2
    except (np.linalg.LinAlgError, ValueError, FloatingPointError, XgammaError):
        # a singular information matrix, or a step the model refuses (e.g. a size near 0)
        return {}
    finally:
        likelihood.set_values(start)
    bias = -0.5 * covariance @ ((jacobian[:, inside] / mu[inside]) @ curvature[inside])
    sigma = np.sqrt(np.diag(covariance))
    return {label: {"bias": float(b), "ratio": float(b / s)} for label, b, s in zip(labels, bias, sigma)}


def check_bias(biases: dict[str, dict[str, float]], models: list, *,
               tolerance: float = BIAS_TOLERANCE) -> list[str]:
    """Log a warning (logger ``"xgamma"``) naming each sky-model parameter biased beyond ``tolerance``.

    A log record, not a `~xgamma.exceptions.DataWarning`: at modest statistics a bias of 0.1 of
    an error is common (the index of a point source in 80 min of simulated data: +0.12), and
    light curves and flux points refit per bin; `xgamma run` and a Python session without
    logging set up both print it (Python's last-resort handler shows warnings).

    Parameters
    ----------
    biases : dict
        `finite_sample_bias` of the fit.
    models : list
        The fitted models: only sky models' parameters are checked (a background norm's bias is
        recorded, not warned about).
    tolerance : float
        Largest tolerated ``|bias| / error``.

    Returns
    -------
    list of str
        The labels warned about.
    """
    from xgamma.models.sky_model import SkyModel

    sky = {m.name for m in models if isinstance(m, SkyModel)}
    warned = [label for label, entry in biases.items()
              if label.rsplit(".", 1)[0] in sky and math.isfinite(entry["ratio"]) and abs(entry["ratio"]) > tolerance]
    if warned:
        details = ", ".join(f"{label} {biases[label]['bias']:+.3g} ({biases[label]['ratio']:+.2f} of its error)"
                            for label in warned)
        logging.getLogger("xgamma").warning(
            f"fit: the maximum-likelihood estimate of {details} is biased by more than {tolerance:g} of its "
            "error at these statistics (first-order finite-sample bias, which falls as 1/counts; Gammapy's "
            "estimate has it too). The values are the MLE; subtract fit.json's 'bias' for a bias-corrected "
            "estimate, and quote the profile-likelihood (MINOS) interval.")
    return warned

