"""Exception hierarchy of xgamma.

Every error a user can cause (bad file, bad config key, bad parameter) raises a subclass of
:class:`XgammaError`, with a message naming the file, HDU, column, key or parameter at fault.
Subclasses also derive from the builtin a caller would expect (``ValueError``, ``KeyError``...).
Warnings xgamma emits are subclasses of :class:`XgammaWarning` (the test suite turns them into
errors unless a test expects them).
"""

from __future__ import annotations

__all__ = [
    "XgammaError",
    "DataStoreError",
    "IRFError",
    "GeometryError",
    "UnitError",
    "ConfigError",
    "ModelError",
    "FitError",
    "EstimatorError",
    "PluginError",
    "SimulationError",
    "XgammaWarning",
    "DataWarning",
]


class XgammaError(Exception):
    """Base class of all xgamma errors."""


class DataStoreError(XgammaError, ValueError):
    """A DL3 data store, file, HDU or column is missing or malformed (the message names it)."""


class IRFError(DataStoreError):
    """An instrument response function cannot be read or evaluated."""


class GeometryError(XgammaError, ValueError):
    """A sky geometry or map is inconsistent (shape, WCS, dims, coordinates)."""


class UnitError(XgammaError, ValueError):
    """A quantity has missing or incompatible units."""


class ConfigError(XgammaError, ValueError):
    """A configuration key is unknown, missing or has a bad value (the message gives its path)."""


class ModelError(XgammaError, ValueError):
    """A model, parameter or model file is invalid."""


class FitError(XgammaError, RuntimeError):
    """A fit cannot be set up or run."""


class EstimatorError(XgammaError, ValueError):
    """A background or significance estimator got invalid parameters or inputs."""


class PluginError(XgammaError):
    """A plugin failed to load, raised in a hook, or returned a bad or duplicate entry."""


class SimulationError(XgammaError, ValueError):
    """A simulation request is invalid."""


class XgammaWarning(UserWarning):
    """Base class of the warnings xgamma emits (e.g. `xgamma.plugin.PluginWarning`); also an input
    that is odd but usable: the result is right, and the warning says what was done.

    ``xgamma`` prints these as ``xgamma: warning: ...`` lines.
    """


class DataWarning(XgammaWarning, RuntimeWarning):
    """The inputs make a result undefined or degenerate (e.g. an exclusion mask without usable pixels)."""
