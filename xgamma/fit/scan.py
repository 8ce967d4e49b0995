"""Is a fitted source position the best one? A scan of the data for a lower minimum.

MIGRAD finds a local minimum. Started away from a source, a point source settles on a noise
fluctuation, a weaker neighbour or a negative amplitude, and MIGRAD calls that minimum valid.
After the fit, for each source with a free position:

1. Screening (all pixels at once, FFT): with the other models at their best fit (prediction
   ``b``), the score statistic of the source's best-fit image ``t`` moved to each pixel,
   ``TS(p) = U(p)^2 / I(p)`` for ``U > 0``, with ``U = sum t_p (n - b) / b`` and
   ``I = sum t_p^2 / b`` (the likelihood-ratio TS to first order; the exposure at ``p`` scales
   ``t`` per energy bin).
2. The highest local maxima of the screening map inside the position limits whose score reaches
   half the source's TS are refitted (only this source free, from the maximum). A statistic lower
   than the fit's by more than the tolerance proves that a lower minimum exists: the fit is
   reported as failed, naming where.

The screening ranks candidates; the refit decides. Freezing the other models during the refit
only raises its statistic, so a lower value found this way is certain.

Closer in, :func:`neighbour_minimum` restarts a point source one pixel away from MIGRAD's minimum
in each direction when its prediction has kinks at pixel centres (``point_method="bilinear"``):
such a likelihood has a local minimum in every pixel cell around a source (3.3 apart on the CTA
Galactic Centre image), and :func:`xgamma.fit.fit` continues from a lower one when it finds it.
"""

from __future__ import annotations

import numpy as np

from xgamma.fit.limits import Limit, data_footprint, has_position
from xgamma.fit.npred import DatasetArrays, convolve_full, npred_source, npred_total
from xgamma.fit.statistic import Likelihood
from xgamma.geometry.sky import wrap_longitude
from xgamma.models.sky_model import SkyModel
from xgamma.models.spatial import Point

__all__ = ["score_map", "lower_minimum", "neighbour_minimum"]

#: Candidates refitted per source (in decreasing screening score).
MAX_CANDIDATES = 3


def _correlate(image: np.ndarray, kernel: np.ndarray, anchor: tuple[int, int]) -> np.ndarray:
    """``out[p] = sum_j kernel[j] image[p - anchor + j]`` (zero outside the image), image-shaped."""
    full = convolve_full(image, kernel[::-1, ::-1])
    ky, kx = kernel.shape
    oy, ox = ky - 1 - anchor[0], kx - 1 - anchor[1]
    return full[oy:oy + image.shape[0], ox:ox + image.shape[1]]


def score_map(arrays: DatasetArrays, background: np.ndarray, template: np.ndarray, anchor: tuple[int, int],
              centre: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Screening score and amplitude factor of ``template`` placed at every pixel.

    Parameters
    ----------
    arrays : DatasetArrays
        Counts, exposure and mask.
    background : numpy.ndarray
        Predicted counts of everything else, shape (n_energy, n_lat, n_lon).
    template : numpy.ndarray
        Predicted counts of the source (n_energy, ky, kx), non-negative.
    anchor : (int, int)
        Pixel of ``template`` at the source centre.
    centre : (int, int)
        Map pixel of the source centre (where ``template`` was made).

    Returns
    -------
    score : numpy.ndarray
        ``U^2 / I`` where ``U > 0``, else 0 (n_lat, n_lon).
    factor : numpy.ndarray
        ``U / I``: the amplitude factor that maximises the quadratic approximation.
    """
    ny, nx = arrays.grid.shape
    u = np.zeros((ny, nx))
    info = np.zeros((ny, nx))
    iy, ix = min(max(centre[0], 0), ny - 1), min(max(centre[1], 0), nx - 1)
    for e in range(arrays.shape[0]):
        kernel = template[e]
        if not np.any(kernel > 0):
            continue
        b = background[e]
        use = arrays.mask[e] & (b > 0)
        inv_b = np.divide(1.0, b, out=np.zeros_like(b), where=use)
        excess = (arrays.counts[e] - b) * inv_b
        # Exposure at the trial pixel relative to the template's own centre (per energy bin).
        exposure = arrays.reco_exposure[e]
        reference = exposure[iy, ix]
        scale = exposure / reference if reference > 0 else np.zeros((ny, nx))
        u += scale * _correlate(excess, kernel, anchor)
        info += scale**2 * _correlate(inv_b, kernel**2, anchor)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(info > 0, u / info, 0.0)
    return np.where(u > 0, u * factor, 0.0), factor


def _template(arrays: DatasetArrays, source: SkyModel) -> tuple[np.ndarray, tuple[int, int], tuple[int, int], float]:
    """Source prediction with a positive amplitude: (values, anchor in the box, centre pixel, sign)."""
    box, values = npred_source(arrays, source)
    if box is None or not np.any(values):
        return np.zeros((arrays.shape[0], 0, 0)), (0, 0), (0, 0), 0.0
    sign = 1.0 if values.sum() > 0 else -1.0
    x, y = arrays.grid.to_pixel(*source.spatial.position_in(arrays.grid.frame))
    ix, iy = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
    return np.clip(sign * values, 0.0, None), (iy - box[0].start, ix - box[1].start), (iy, ix), sign


def _inside(limits: dict[str, Limit], name: str, lon: float, lat: float) -> bool:
    for key, value in ((f"{name}.lon_0", lon), (f"{name}.lat_0", lat)):
        limit = limits.get(key)
        if limit is None:
            continue
        if key.endswith("lon_0") and np.isfinite(limit.lo):
            value = limit.lo + (value - limit.lo) % 360.0
        if not limit.lo <= value <= limit.hi:
            return False
    return True


def _refit_at(likelihood: Likelihood, source, lon: float, lat: float, limits: dict[str, Limit],
              amplitude_factor: float = 1.0):
    """Refit only ``source`` (the other models frozen) from centre (lon, lat) in its frame.

    Returns the fit result and the refitted copies of all models.
    """
    from xgamma.fit.minimize import minimize

    trial = [m.copy() for m in likelihood.models]
    for m in trial:
        if m.name != source.name:
            for p in m.parameters:
                p.frozen = True
    moved = next(m for m in trial if m.name == source.name)
    moved.spatial.lon_0.value, moved.spatial.lat_0.value = lon, lat
    amplitude = next((p for p in moved.spectral.parameters if p.name == "amplitude"), None)
    if amplitude is not None and not amplitude.frozen:
        amplitude.value *= amplitude_factor
    return minimize(likelihood.with_models(trial), limits=limits), trial


def _kinked(arrays: DatasetArrays, source: SkyModel) -> bool:
    """Whether the source's prediction has kinks at pixel centres: a point source spread
    bilinearly over 4 pixels (``point_method="bilinear"``, or no PSF profile to integrate)."""
    exact = arrays.point_method == "exact" and arrays.psf is not None and arrays.psf.profile is not None
    return isinstance(source.spatial, Point) and not exact


def neighbour_minimum(
    likelihood: Likelihood,
    source,
    statistic: float,
    *,
    limits: dict[str, Limit],
    tolerance: float = 0.1,
) -> list | None:
    """Refits of ``source`` from one pixel away in each direction; the models of the lowest one
    if it beats ``statistic`` by more than ``tolerance`` (else None). Only for predictions with
    kinks at pixel centres (elsewhere the likelihood is smooth on the pixel scale).

    Only ``source`` is refitted (the rest frozen), so a lower value is a lower point of the full
    likelihood too.
    """
    arrays = likelihood.arrays
    if (not has_position(source) or source.spatial.lon_0.frozen or source.spatial.lat_0.frozen
            or not _kinked(arrays, source)):
        return None
    x, y = arrays.grid.to_pixel(*source.spatial.position_in(arrays.grid.frame))
    best = None
    for dx, dy in ((1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0)):
        lon, lat = _world(arrays, x + dx, y + dy, source.spatial.frame)
        if not _inside(limits, source.name, lon, lat):
            continue
        result, trial = _refit_at(likelihood, source, lon, lat, limits)
        if result.statistic < statistic - tolerance and (best is None or result.statistic < best[0]):
            best = (result.statistic, trial)
    return None if best is None else best[1]


def lower_minimum(
    likelihood: Likelihood,
    source,
    statistic: float,
    *,
    ts: float,
    limits: dict[str, Limit],
    tolerance: float = 0.1,
) -> str | None:
    """Why the fitted position of ``source`` is not the global minimum (None if none is found).

    Parameters
    ----------
    likelihood : Likelihood
        At the best fit (its models are copied, not changed).
    source : model
        One of ``likelihood.models``; sky models with a free ``lon_0`` and ``lat_0`` are scanned,
        anything else gives None.
    statistic : float
        The statistic at the best fit.
    ts : float
        The source's TS at the best fit (candidates must score at least half of it).
    limits : dict
        Position limits (candidates outside them are ignored).
    tolerance : float
        A statistic lower by more than this is a lower minimum.
    """
    if not has_position(source) or source.spatial.lon_0.frozen or source.spatial.lat_0.frozen:
        return None
    spatial = source.spatial
    arrays = likelihood.arrays
    template, anchor, centre, sign = _template(arrays, source)
    if sign == 0.0:
        return None
    background = npred_total(arrays, [m for m in likelihood.models if m is not source])
    score, factor = score_map(arrays, background, template, anchor, centre)
    from scipy.ndimage import maximum_filter

    peaks = (score == maximum_filter(score, size=3)) & (score > max(0.5 * ts, 1.0)) & data_footprint(arrays)
    peaks[max(centre[0] - 1, 0):centre[0] + 2, max(centre[1] - 1, 0):centre[1] + 2] = False  # the fit itself
    ys, xs = np.nonzero(peaks)
    order = np.argsort(score[ys, xs])[::-1]
    tried = 0
    for k in order:
        if tried == MAX_CANDIDATES:
            break
        lon, lat = _world(arrays, xs[k], ys[k], spatial.frame)
        if not _inside(limits, source.name, lon, lat):
            continue
        tried += 1
        # The template had a positive amplitude: start from the sign-corrected, rescaled one.
        result, _ = _refit_at(likelihood, source, lon, lat, limits,
                              amplitude_factor=sign * min(max(factor[ys[k], xs[k]], 0.01), 100.0))
        if result.statistic < statistic - tolerance:
            values = result.values
            return (f"source {source.name!r}: a lower minimum exists at "
                    f"({wrap_longitude(values[f'{source.name}.lon_0'], spatial.frame):.4f}, "
                    f"{values[f'{source.name}.lat_0']:.4f}) deg {spatial.frame} (statistic lower by "
                    f"{statistic - result.statistic:.4g} with only this source refitted): the fit stopped in a "
                    "local minimum; start near that position or bound the position")
    return None


def _world(arrays: DatasetArrays, x: float, y: float, frame: str) -> tuple[float, float]:
    lon, lat = arrays.grid.geometry.pixel_to_world(np.array([float(x)]), np.array([float(y)]))
    if frame != arrays.grid.frame:
        from astropy.coordinates import SkyCoord

        c = SkyCoord(lon, lat, unit="deg", frame=arrays.grid.frame).transform_to(frame)
        lon, lat = c.spherical.lon.deg, c.spherical.lat.deg
    return float(lon[0]), float(lat[0])
