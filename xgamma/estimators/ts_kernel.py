"""Source kernels of TS maps: the PSF, or a Gaussian convolved with it, normalised per energy bin."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from xgamma.exceptions import EstimatorError

__all__ = ["ts_kernel", "kernel_offsets", "MORPHOLOGIES"]

#: Source shapes a TS kernel (and so TS maps, source detection, ``xgamma run``) knows.
MORPHOLOGIES = ("point", "gaussian")


def _psf_data(psf: Any) -> np.ndarray:
    if psf is None:
        return np.ones((1, 1, 1))
    data = np.asarray(getattr(psf, "data", psf), dtype=float)
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3 or data.shape[1] != data.shape[2] or data.shape[1] % 2 != 1:
        raise EstimatorError(f"psf: expected kernels of shape (n_energy, k, k) with odd k, got {data.shape}")
    if not np.all(np.isfinite(data)) or np.any(data < 0):
        raise EstimatorError("psf: kernel values must be finite and >= 0")
    return data


def _gaussian_stamp(sigma_pix: float, half: int) -> np.ndarray:
    """Pixel-integrated 2-D Gaussian (flat sky) on a (2 half + 1)^2 stamp centred on a pixel."""
    from scipy.special import ndtr

    edges = (np.arange(-half, half + 2) - 0.5) / sigma_pix
    profile = np.diff(ndtr(edges))
    return np.outer(profile, profile)


def ts_kernel(
    psf: Any = None,
    *,
    pixel_scale: float | None = None,
    morphology: Literal["point", "gaussian"] = "point",
    sigma: Any = None,
    max_radius: Any = None,
) -> np.ndarray:
    """Kernel of a TS map: the expected counts shape of a source, per energy bin, summing to 1.

    Parameters
    ----------
    psf : `~xgamma.fit.PSFKernel`, numpy.ndarray or None
        PSF kernel(s) on the map's pixels, shape (n_energy, k, k) or (k, k) (odd k); None for a
        perfect PSF (a one-pixel kernel).
    pixel_scale : float, optional
        Pixel size (deg); needed for a Gaussian or a ``max_radius`` (taken from ``psf`` when it
        is a PSFKernel).
    morphology : {"point", "gaussian"}
        Source shape before the PSF. Default is "point".
    sigma : str or `~astropy.units.Quantity`, optional
        Width of the Gaussian (angle; for ``morphology="gaussian"``).
    max_radius : str or `~astropy.units.Quantity`, optional
        Truncation radius (angle): pixels whose centre lies further from the kernel centre are
        dropped, then each kernel is renormalised (as Gammapy's ``kernel_width`` / 2). Default:
        the PSF kernel's own size, plus 4 sigma for a Gaussian.

    Returns
    -------
    kernel : numpy.ndarray
        Shape (n_energy, k, k), odd k, each energy's kernel summing to 1.

    Examples
    --------
    >>> kernel = ts_kernel(None, pixel_scale=0.02, morphology="gaussian", sigma="0.1 deg")
    >>> kernel.shape, round(float(kernel.sum()), 12)
    ((1, 41, 41), 1.0)
    """
    from xgamma.units import parse_angle

    data = _psf_data(psf)
    if pixel_scale is None:
        pixel_scale = getattr(psf, "pixel_scale", None)
    if morphology not in MORPHOLOGIES:
        raise EstimatorError(f"morphology must be one of {list(MORPHOLOGIES)}, got {morphology!r}")
    if (morphology == "gaussian" or max_radius is not None) and not (pixel_scale and pixel_scale > 0):
        raise EstimatorError("pixel_scale (deg) is needed for a Gaussian kernel or a max_radius")
    if morphology == "gaussian":
        if sigma is None:
            raise EstimatorError("morphology='gaussian' needs sigma (an angle)")
        sigma_pix = parse_angle(sigma, name="sigma").to_value("deg") / pixel_scale
        if not sigma_pix > 0:
            raise EstimatorError(f"sigma must be positive, got {sigma!r}")
        from xgamma.convolution import convolve_full

        stamp = _gaussian_stamp(sigma_pix, int(np.ceil(4.0 * sigma_pix)))
        data = np.array([convolve_full(plane, stamp) for plane in data])
    if max_radius is not None:
        radius_pix = parse_angle(max_radius, name="max_radius").to_value("deg") / pixel_scale
        if not radius_pix > 0:
            raise EstimatorError(f"max_radius must be positive, got {max_radius!r}")
        half = data.shape[-1] // 2
        keep = min(int(np.floor(radius_pix)), half)
        data = data[:, half - keep:half + keep + 1, half - keep:half + keep + 1]
        y, x = np.mgrid[-keep:keep + 1, -keep:keep + 1]
        data = data * (x**2 + y**2 <= radius_pix**2)
    total = data.sum(axis=(1, 2))
    if np.any(total <= 0):
        raise EstimatorError("kernel: an energy bin's kernel is zero (max_radius smaller than a pixel?)")
    return data / total[:, None, None]


def kernel_offsets(kernel: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """The kernel entries a fit uses, row by row: values and ``(dy, dx_lo, dx_hi)`` runs.

    Rows of the kernel (any energy) are cut to the span of their non-zero values, so a disk
    kernel costs its area, not its bounding square.

    Returns
    -------
    values : numpy.ndarray
        Shape (n_energy, n_entries): kernel values in run order.
    runs : list of (dy, dx_lo, dx_hi)
        Per kernel row with non-zero values, its offset and inclusive column span (0-based in
        the kernel array).
    """
    nonzero = np.any(kernel > 0, axis=0)
    runs, columns = [], []
    for dy in range(kernel.shape[1]):
        cols = np.flatnonzero(nonzero[dy])
        if cols.size:
            runs.append((dy, int(cols[0]), int(cols[-1])))
            columns.append(kernel[:, dy, cols[0]:cols[-1] + 1])
    return np.concatenate(columns, axis=1), runs
