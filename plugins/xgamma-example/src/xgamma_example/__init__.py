"""xgamma-example: a plugin package to copy when writing your own xgamma plugin.

It adds, through the entry point ``example`` in the group ``xgamma``:

* spatial model ``elliptical_gaussian`` (:class:`xgamma_example.spatial.EllipticalGaussian`),
* spectral model ``sbpl`` (:class:`xgamma_example.spectral.SmoothBrokenPowerLaw`),
* background estimator ``fov`` (:class:`xgamma_example.background.FoVBackground`).

Importing this package imports nothing heavy: :mod:`xgamma_example.plugin` registers the
components by import reference, and xgamma imports them only when they are used.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
