"""Hook specifications of xgamma: the complete list of what a plugin can provide.

Every hook takes no argument and returns an iterable (a list, a tuple, or a generator using
``yield``) of typed entries from :mod:`xgamma.plugin.types`. All results are collected: each
installed plugin adds its entries, and the registry (:func:`xgamma.plugin.get_registry`) merges
them, rejecting invalid entries and duplicate names with a
:class:`~xgamma.exceptions.PluginError` that names both providers.

Built-in components are registered through exactly these hooks (:mod:`xgamma.plugin.builtins`).
The page ``docs/plugins.md`` documents each hook; a test checks that it lists every hook here
with the same signature.
"""

from __future__ import annotations

from collections.abc import Iterable

import pluggy

from xgamma.plugin.types import (
    BackgroundEstimatorEntry,
    IRFReaderEntry,
    SpatialModelEntry,
    SpectralModelEntry,
)

__all__ = [
    "hookimpl",
    "xgamma_background_estimators",
    "xgamma_irf_readers",
    "xgamma_spatial_models",
    "xgamma_spectral_models",
]

PROJECT_NAME = "xgamma"

# Private: only xgamma declares hooks. Plugins use the public ``hookimpl``.
hookspec = pluggy.HookspecMarker(PROJECT_NAME)

#: Decorator marking a plugin's hook implementation (re-exported as ``xgamma.hookimpl``).
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


@hookspec
def xgamma_spectral_models() -> Iterable[SpectralModelEntry]:
    """Register spectral models.

    All results are collected: every plugin's entries are merged into the registry, where
    model YAML files (``spectral: {type: ...}``), ``xgamma run`` configs and
    :func:`xgamma.plugin.get_registry` ``.get_spectral_model(name)`` find them by name or
    alias (case-insensitive).

    A spectral model class follows the contract of the built-in ones
    (:class:`xgamma.models.spectral.PowerLaw`): class attribute ``tag`` equal to the entry name,
    parameters declared as :class:`xgamma.models.ParameterSpec` class attributes (their
    order is `~xgamma.models.Model.parameter_names`; ``Model.__init__`` takes them as keywords, so
    no ``__init__`` is needed), and a pure, vectorised staticmethod
    ``evaluate(energy, *values)`` (energy in TeV, values in declaration order and canonical
    units) returning dN/dE in ``flux_unit``;
    the base class :class:`xgamma.models.spectral.SpectralModel` provides ``__call__``,
    ``integral`` and ``to_dict``. Run :func:`xgamma.testing.check_spectral_model` on it.

    Returns
    -------
    iterable of SpectralModelEntry
        One entry per model: ``SpectralModelEntry(name, cls, aliases=())``. ``cls`` may be an
        import reference ``"package.module:Class"`` so that nothing heavy is imported until
        the model is used. A name or alias already registered is rejected (see
        :mod:`xgamma.plugin.registry`, "Name conflicts"): a warning at discovery, and a
        :class:`~xgamma.exceptions.PluginError` naming both providers on use.

    Notes
    -----
    .. versionadded:: 0.1

    Examples
    --------
    A complete plugin: the package ``mymodels`` declares its hook module in
    ``pyproject.toml``::

        [project.entry-points.xgamma]
        mymodels = "mymodels.plugin"

    the model (``mymodels/spectral.py``)::

        import numpy as np
        from xgamma.models import ParameterSpec, SpectralModel


        class SuperExpCutoff(SpectralModel):
            # dN/dE = amplitude (E / reference)^-index exp(-(E / ecut)^2)

            tag = "super_ecpl"
            index = ParameterSpec(2.0, "")
            amplitude = ParameterSpec(1e-12, "TeV-1 cm-2 s-1")
            ecut = ParameterSpec(10.0, "TeV", min=0.0)
            reference = ParameterSpec(1.0, "TeV", frozen=True)

            @staticmethod
            def evaluate(energy, index, amplitude, ecut, reference):
                return amplitude * (energy / reference) ** -index * np.exp(-((energy / ecut) ** 2))

    and the hook implementation (``mymodels/plugin.py``), which imports nothing heavy::

        from xgamma.plugin import SpectralModelEntry, hookimpl


        @hookimpl
        def xgamma_spectral_models():
            yield SpectralModelEntry(
                name="super_ecpl",
                cls="mymodels.spectral:SuperExpCutoff",
                aliases=("SuperExpCutoffSpectralModel",),
            )

    After ``pip install mymodels``, ``xgamma plugins`` lists ``super_ecpl`` and a model YAML
    file can say ``spectral: {type: super_ecpl, ...}``.
    """


@hookspec
def xgamma_spatial_models() -> Iterable[SpatialModelEntry]:
    """Register spatial models.

    All results are collected, exactly as for :func:`xgamma_spectral_models`; names are looked
    up by model YAML files (``spatial: {type: ...}``), configs and
    ``get_registry().get_spatial_model(name)``.

    A spatial model class follows the contract of the built-ins
    (:class:`xgamma.models.spatial.Gaussian`): derived from
    :class:`xgamma.models.spatial.SpatialModel` (which declares ``lon_0``, ``lat_0`` in deg and
    takes the parameters and the ``frame`` as keywords: no ``__init__`` is needed), class
    attribute ``tag``, its shape parameters declared as `~xgamma.models.ParameterSpec`
    attributes, and
    either a radial ``evaluate(sep, *shape_values)`` (surface brightness in ``sr-1``,
    normalised to 1 over the sky) or a ``surface_brightness(lon, lat, frame)`` override for
    shapes that depend on the direction (`xgamma.geometry.angular_distance` and
    `xgamma.geometry.position_angle` give both from degrees).
    Run :func:`xgamma.testing.check_spatial_model` on it.

    Returns
    -------
    iterable of SpatialModelEntry
        ``SpatialModelEntry(name, cls, aliases=())``; ``cls`` is a class or
        ``"package.module:Class"``. Duplicate names or aliases are rejected as for
        :func:`xgamma_spectral_models`.

    Examples
    --------
    In the hook module of the package laid out as in :func:`xgamma_spectral_models`, with
    ``SpatialModelEntry`` and ``hookimpl`` imported from :mod:`xgamma.plugin`::

        @hookimpl
        def xgamma_spatial_models():
            return [SpatialModelEntry(name="elliptical_gaussian", cls="mymodels.spatial:EllipticalGaussian",
                                      aliases=("egauss",))]

    .. versionadded:: 0.1
    """


# --------------------------------------------------------------------------------------------
# Background estimation
# --------------------------------------------------------------------------------------------


@hookspec
def xgamma_background_estimators() -> Iterable[BackgroundEstimatorEntry]:
    """Register background estimators.

    All results are collected; ``xgamma run`` configs (``ring: {method: ring, ...}``) and
    ``get_registry().get_background_estimator(name)`` find them by name.

    An estimator class takes its parameters as keyword arguments (angles as
    ``astropy.units.Quantity`` or strings such as ``"0.5 deg"``), has a class attribute ``name``
    equal to the entry name, and a method ``run(dataset) -> dataset`` that takes an
    ``xarray.Dataset`` with ``counts``, ``background`` (and optionally ``exclusion``) maps and
    returns a new Dataset whose ``background`` holds the estimate, built lazily. Run
    :func:`xgamma.testing.check_background_estimator` on it.

    Returns
    -------
    iterable of BackgroundEstimatorEntry
        ``BackgroundEstimatorEntry(name, cls)``; ``cls`` is a class or
        ``"package.module:Class"``. Duplicate names are rejected as for
        :func:`xgamma_spectral_models`.

    Examples
    --------
    The estimator's entry, by import reference (``mybkg/plugin.py``, the module named by the
    entry point ``mybkg = "mybkg.plugin"``)::

        from xgamma.plugin import BackgroundEstimatorEntry, hookimpl

        @hookimpl
        def xgamma_background_estimators():
            yield BackgroundEstimatorEntry(name="fov", cls="mybkg.fov:FoVBackground")

    .. versionadded:: 0.1
    """


# --------------------------------------------------------------------------------------------
# Instrument response functions
# --------------------------------------------------------------------------------------------


@hookspec
def xgamma_irf_readers() -> Iterable[IRFReaderEntry]:
    """Register readers of IRF HDUs, keyed by HDU class.

    All results are collected. When an observation's IRF is read, the data store looks up the
    HDU's class (the GADF ``HDUCLAS4`` header value, e.g. ``aeff_2d``, ``bkg_3d``,
    ``psf_table``; lower-cased) with ``get_registry().get_irf_reader(hdu_class)`` and calls
    the reader. A new instrument format is therefore a plugin providing a reader.

    A reader is a callable ``reader(path, hdu) -> irf`` taking the FITS file path and the HDU
    name or index, and returning an object with the evaluation methods of its IRF type (see
    ``docs/architecture.md``, "DL3"), raising :class:`~xgamma.exceptions.IRFError` naming the
    HDU and column at fault. A background's ``integrate_energy(energy_edges, fov_lon, fov_lat, *,
    bins=None)`` computes only the bins of ``bins`` (a slice; the others are 0); one without the
    ``bins`` keyword is asked for every bin (``docs/plugins.md``).

    Returns
    -------
    iterable of IRFReaderEntry
        ``IRFReaderEntry(hdu_class, reader)``; ``reader`` is a callable or
        ``"package.module:function"``. A HDU class that is already handled is rejected as for
        :func:`xgamma_spectral_models`.

    Examples
    --------
    A reader of a new background format, registered with ``@hookimpl`` from :mod:`xgamma.plugin`::

        def read_bkg_v2(path, hdu):                  # myirf/readers.py
            return BackgroundV2.from_hdu(fits.getheader(path, hdu), fits.getdata(path, hdu))

        @hookimpl                                    # myirf/plugin.py
        def xgamma_irf_readers():
            yield IRFReaderEntry(hdu_class="bkg_cube_v2", reader="myirf.readers:read_bkg_v2")

    .. versionadded:: 0.1
    """
