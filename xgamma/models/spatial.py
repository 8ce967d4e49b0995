"""Spatial models: surface brightness (sr-1) on the sky and its integral over map pixels.

``evaluate(sep, *shape_values)`` staticmethods give the normalised surface brightness of the
radial models as a function of the angular distance (deg) from the centre. ``integrate_geom``
returns the fraction of the model's flux falling in each pixel: sub-pixel sources are integrated
(the point source spreads its flux over the 4 nearest pixels with bilinear weights so that the
flux centroid is exactly the source position; extended models are evaluated on an oversampled
sub-pixel grid chosen from the model's size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from xgamma.exceptions import GeometryError, ModelError
from xgamma.geometry.spherical import angular_distance
from xgamma.models.core import Model
from xgamma.models.parameter import ParameterSpec, ParamInput

__all__ = ["PixelGrid", "SpatialModel", "Point", "Gaussian", "Disk", "Shell", "Template"]

_FRAMES = ("galactic", "icrs")
_MAX_OVERSAMPLE = 16


@dataclass
class PixelGrid:
    """The pixels of a sky image prepared for model integration: a geometry and its pixel solid angles.

    Built once per map (``PixelGrid.from_geometry``) and reused for every model evaluation; its
    ``shape``, ``frame`` and ``pixel_scale`` are those of the `~xgamma.geometry.SkyGeometry`.
    """

    geometry: Any
    solid_angle: np.ndarray  # (n_lat, n_lon) sr

    @classmethod
    def from_geometry(cls, geometry: Any) -> PixelGrid:
        """From an :class:`xgamma.geometry.SkyGeometry` (its solid angles are computed once here)."""
        omega = geometry.solid_angle()
        omega = np.asarray(getattr(omega, "value", omega), dtype=float)
        return cls(geometry=geometry, solid_angle=omega.reshape(geometry.shape))

    @property
    def shape(self) -> tuple[int, int]:
        """Image shape (n_lat, n_lon)."""
        return self.geometry.shape

    @property
    def frame(self) -> str:
        """Frame of the pixel coordinates ("galactic" or "icrs")."""
        return self.geometry.frame

    @property
    def pixel_scale(self) -> float:
        """Pixel size (deg): `SkyGeometry.pixel_scale`."""
        return self.geometry.pixel_scale

    def to_pixel(self, lon: float, lat: float) -> tuple[float, float]:
        """0-based pixel coordinates (x, y) of a world position in the grid's frame (deg)."""
        x, y = self.geometry.world_to_pixel(np.array([lon], dtype=float), np.array([lat], dtype=float))
        return float(x[0]), float(y[0])

    def pixel_sizes(self, x: float, y: float) -> tuple[float, float]:
        """True sizes (deg) along x and y of the pixel centred at (x, y): CAR pixels shrink in
        longitude by cos(lat), so models and kernels use these rather than `pixel_scale`."""
        lon, lat = self.geometry.pixel_to_world(np.array([x - 0.5, x, x + 0.5, x]), np.array([y, y - 0.5, y, y + 0.5]))
        size_x, size_y = angular_distance(lon[:2], lat[:2], lon[2:], lat[2:])
        return float(size_x), float(size_y)

    def box(self, x0: float, y0: float, radius_pix: float) -> tuple[slice, slice] | None:
        """Pixel slices (lat, lon) of the box around (x0, y0), clipped to the map (None if outside)."""
        ny, nx = self.shape
        ylo, yhi = max(int(math.floor(y0 - radius_pix)), 0), min(int(math.ceil(y0 + radius_pix)) + 1, ny)
        xlo, xhi = max(int(math.floor(x0 - radius_pix)), 0), min(int(math.ceil(x0 + radius_pix)) + 1, nx)
        if ylo >= yhi or xlo >= xhi:
            return None
        return slice(ylo, yhi), slice(xlo, xhi)

    def subpixel_world(self, box: tuple[slice, slice], factor: int) -> tuple[np.ndarray, np.ndarray]:
        """World coordinates (deg) of a ``factor x factor`` sub-pixel grid over ``box``.

        Returns arrays of shape (ny * factor, nx * factor).
        """
        sy, sx = box
        offsets = (np.arange(factor) + 0.5) / factor - 0.5
        ys = (np.arange(sy.start, sy.stop)[:, None] + offsets).ravel()
        xs = (np.arange(sx.start, sx.stop)[:, None] + offsets).ravel()
        xx, yy = np.meshgrid(xs, ys)
        return self.geometry.pixel_to_world(xx, yy)


class SpatialModel(Model):
    """Base class of spatial models with a centre (``lon_0``, ``lat_0``) in ``frame``.

    Parameters
    ----------
    frame : {"icrs", "galactic"}
        Frame of the centre (and of any direction-dependent parameter). Default is "icrs".
    **values
        Parameter values (see `Model`); ``lon_0`` and ``lat_0`` in deg.

    Raises
    ------
    ModelError
        For another frame, or a bad parameter value.
    """

    lon_0 = ParameterSpec(0.0, "deg")
    lat_0 = ParameterSpec(0.0, "deg", min=-90.0, max=90.0)
    frame: str = "icrs"

    def __init__(self, *, frame: str = "icrs", **values: ParamInput) -> None:
        if frame not in _FRAMES:
            raise ModelError(f"spatial model frame {frame!r} is not one of {_FRAMES}")
        self.frame = frame
        super().__init__(**values)

    def _extra_dict(self) -> dict[str, Any]:
        return {"frame": self.frame}

    def _extra_key(self) -> tuple:
        return (self.frame,)

    @staticmethod
    def evaluate(sep: np.ndarray, *shape_values: float) -> np.ndarray:  # pragma: no cover - abstract
        """Surface brightness (sr-1) at angular distance ``sep`` (deg) from the centre."""
        raise NotImplementedError

    def evaluation_radius(self) -> float:
        """Radius (deg) outside which the model is zero (or negligible)."""
        raise NotImplementedError

    def oversampling(self, pixel_scale: float) -> int:
        """Sub-pixel factor per axis for integrating over pixels of size ``pixel_scale`` (deg)."""
        return 1

    def position_in(self, frame: str) -> tuple[float, float]:
        """Centre (lon, lat) in deg in ``frame``."""
        lon, lat = self.lon_0.value, self.lat_0.value
        if frame == self.frame:
            return lon, lat
        from astropy.coordinates import SkyCoord

        c = SkyCoord(lon, lat, unit="deg", frame=self.frame).transform_to(frame)
        return float(c.spherical.lon.deg), float(c.spherical.lat.deg)

    def integrate_grid(self, grid: PixelGrid, *, oversample: int | None = None
                       ) -> tuple[tuple[slice, slice] | None, np.ndarray]:
        """Flux fraction per pixel on the box of ``grid`` that the model touches.

        Returns
        -------
        box : (slice, slice) or None
            (lat, lon) pixel slices of the cutout (None if the model is outside the map).
        values : numpy.ndarray
            Flux fraction in each pixel of the box (dimensionless).
        """
        lon0, lat0 = self.position_in(grid.frame)
        x0, y0 = grid.to_pixel(lon0, lat0)
        scale = grid.pixel_scale
        box = grid.box(x0, y0, self.evaluation_radius() / scale + 1.0)
        if box is None:
            return None, np.zeros((0, 0))
        f = oversample or self.oversampling(scale)
        lon, lat = grid.subpixel_world(box, f)
        sb = self.sampled_brightness(lon, lat, grid.frame, scale / f)
        ny, nx = sb.shape[0] // f, sb.shape[1] // f
        mean_sb = sb.reshape(ny, f, nx, f).mean(axis=(1, 3))
        return box, mean_sb * grid.solid_angle[box]

    def surface_brightness(self, lon: np.ndarray, lat: np.ndarray, frame: str) -> np.ndarray:
        """Surface brightness (sr-1) at sky positions (deg) given in ``frame``.

        The default suits radial models: `evaluate` on the separation from the centre. Models
        that also depend on the direction (elongated shapes) override this method only; the
        sub-pixel integration of `integrate_grid` is shared.
        """
        lon0, lat0 = self.position_in(frame)
        return self.evaluate(angular_distance(lon0, lat0, lon, lat), *self.values[2:])

    def sampled_brightness(self, lon: np.ndarray, lat: np.ndarray, frame: str, step: float) -> np.ndarray:
        """Surface brightness (sr-1) to average over sub-pixels of size ``step`` (deg) at (lon, lat).

        The midpoint value (`surface_brightness`) by default; models with edges sharper than
        ``step`` override it to stay continuous in their parameters.
        """
        return self.surface_brightness(lon, lat, frame)

    def integrate_geom(self, geometry: Any, *, oversample: int | None = None) -> np.ndarray:
        """Flux fraction in each pixel of ``geometry`` (2-D, n_lat x n_lon; sums to ~1 inside the map).

        Parameters
        ----------
        geometry : SkyGeometry or PixelGrid
            The map pixels.
        oversample : int, optional
            Sub-pixels per axis (default: chosen from the model size and the pixel size).
        """
        grid = geometry if isinstance(geometry, PixelGrid) else PixelGrid.from_geometry(geometry)
        out = np.zeros(grid.shape)
        box, values = self.integrate_grid(grid, oversample=oversample)
        if box is not None:
            out[box] = values
        return out


class Point(SpatialModel):
    """Point source at (lon_0, lat_0)."""

    tag = "point"
    gammapy_tags = ("PointSpatialModel", "Point", "point")

    def evaluation_radius(self) -> float:
        return 0.0

    def integrate_grid(self, grid: PixelGrid, *, oversample: int | None = None):
        # Bilinear weights over the 4 nearest pixel centres: conserves the flux and puts the
        # flux centroid exactly at the source, continuously in position (smooth likelihood).
        x0, y0 = grid.to_pixel(*self.position_in(grid.frame))
        ix, iy = int(math.floor(x0)), int(math.floor(y0))
        fx, fy = x0 - ix, y0 - iy
        w = np.array([[(1 - fy) * (1 - fx), (1 - fy) * fx], [fy * (1 - fx), fy * fx]])
        ny, nx = grid.shape
        ylo, yhi, xlo, xhi = max(iy, 0), min(iy + 2, ny), max(ix, 0), min(ix + 2, nx)
        if ylo >= yhi or xlo >= xhi:
            return None, np.zeros((0, 0))
        return (slice(ylo, yhi), slice(xlo, xhi)), w[ylo - iy:yhi - iy, xlo - ix:xhi - ix]


class Gaussian(SpatialModel):
    """Symmetric Gaussian on the sphere: exp(-(1 - cos sep) / (2 a)), a = 1 - cos(sigma), normalised."""

    tag = "gaussian"
    gammapy_tags = ("GaussianSpatialModel", "Gaussian", "gauss")
    sigma = ParameterSpec(1.0, "deg", min=0.0)

    @staticmethod
    def evaluate(sep, sigma):
        # Integral over the sphere of exp(-(1-cos t)/(2a)) 2 pi sin t dt = 4 pi a (1 - exp(-1/a)).
        a = 1.0 - np.cos(np.radians(sigma))
        norm = 4.0 * np.pi * a * (-np.expm1(-1.0 / a))
        return np.exp(-(1.0 - np.cos(np.radians(sep))) / (2.0 * a)) / norm

    def evaluation_radius(self) -> float:
        return 5.0 * self.sigma.value

    def oversampling(self, pixel_scale: float) -> int:
        # Midpoint rule: relative error h^2 / (24 sigma^2) per axis at the peak, so a step of
        # sigma / 10 gives per-pixel integrals to < 0.1 %.
        return int(np.clip(math.ceil(10.0 * pixel_scale / max(self.sigma.value, 1e-12)), 1, _MAX_OVERSAMPLE))

    def integrate_grid(self, grid: PixelGrid, *, oversample: int | None = None):
        sigma = self.sigma.value
        if oversample is not None or sigma >= 2.0 * grid.pixel_scale:
            return super().integrate_grid(grid, oversample=oversample)
        # Compact Gaussian (sigma < 2 pixels): exact pixel integrals of the flat-sky Gaussian,
        # a product of erf differences along the pixel axes, using the local pixel sizes
        # (true angles) at the source. The curvature of the sky is negligible over 5 sigma.
        from scipy.special import ndtr

        lon0, lat0 = self.position_in(grid.frame)
        x0, y0 = grid.to_pixel(lon0, lat0)
        box = grid.box(x0, y0, 5.0 * sigma / grid.pixel_scale + 1.0)
        if box is None:
            return None, np.zeros((0, 0))
        size_x, size_y = grid.pixel_sizes(x0, y0)
        ex = (np.arange(box[1].start, box[1].stop + 1) - 0.5 - x0) * size_x / sigma
        ey = (np.arange(box[0].start, box[0].stop + 1) - 0.5 - y0) * size_y / sigma
        return box, np.outer(np.diff(ndtr(ey)), np.diff(ndtr(ex)))


def square_fraction_below(d: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """P(U + V < d) for independent U, V uniform on [-a/2, a/2] and [-b/2, b/2].

    The fraction of a square of side s whose centre is at signed distance ``d`` inside a straight
    edge, with ``a = s |cos phi|`` and ``b = s |sin phi|`` (phi: the edge normal's angle to the
    pixel axes): the projection of the square on the normal is the trapezoid U + V.
    Piecewise quadratic and continuously differentiable in ``d``.
    """
    a, b = np.maximum(a, b), np.minimum(a, b)
    b = np.maximum(b, 1e-3 * a)  # a near-zero width is a linear ramp of width a (to 1e-3)

    def g(x):
        return 0.5 * np.square(np.maximum(x, 0.0))

    h1, h2 = 0.5 * (a + b), 0.5 * (a - b)
    return np.clip((g(d + h1) - g(d + h2) - g(d - h2) + g(d - h1)) / (a * b), 0.0, 1.0)


class Disk(SpatialModel):
    """Uniform disk of radius r_0 with a linear edge of full width ``edge_width * r_0``."""

    tag = "disk"
    gammapy_tags = ("DiskSpatialModel", "Disk", "disk")
    r_0 = ParameterSpec(1.0, "deg", min=0.0)
    edge_width = ParameterSpec(0.01, "", min=0.0, max=1.0, frozen=True)

    @staticmethod
    def evaluate(sep, r_0, edge_width):
        width = max(edge_width * r_0, 1e-12)
        profile = np.clip((r_0 + 0.5 * width - sep) / width, 0.0, 1.0)
        # A linear ramp symmetric about r_0 has the solid angle pi (r_0^2 + width^2 / 12) on the
        # flat sky: the disk's 2 pi (1 - cos r_0) times that correction.
        return profile / (2.0 * np.pi * (1.0 - np.cos(np.radians(r_0))) * (1.0 + edge_width**2 / 12.0))

    def evaluation_radius(self) -> float:
        return self.r_0.value * (1.0 + 0.5 * self.edge_width.value)

    def sampled_brightness(self, lon, lat, frame, step):
        # A sub-pixel is counted by the fraction of its area inside the disk, not by its centre:
        # otherwise the pixel integrals jump as the edge crosses sub-pixel centres and the
        # likelihood is a staircase in r_0 and position, on which MIGRAD fails. The fraction is
        # that of a square of side ``step`` cut by the edge taken as straight (exact up to the
        # edge's curvature, step^2 / (8 r_0)): it depends on the edge's angle to the pixel axes
        # and is smooth (piecewise quadratic) in r_0 and position, so HESSE sees a smooth
        # curvature. A linear ramp one sub-pixel wide (the earlier choice) is right only for
        # edges parallel to the axes: up to 1-2 % off per edge pixel and kinked in r_0.
        # Its half-width (at most step / sqrt(2)) stays inside the one-pixel margin of the box.
        r_0, edge = self.r_0.value, self.edge_width.value
        if edge * r_0 >= step:  # the model's own ramp is resolved by the sub-pixels
            return super().sampled_brightness(lon, lat, frame, step)
        lon0, lat0 = self.position_in(frame)
        sep = angular_distance(lon0, lat0, lon, lat)
        # Direction from the centre on the local tangent plane (pixel axes along lon and lat).
        dx = ((np.asarray(lon) - lon0 + 180.0) % 360.0 - 180.0) * np.cos(np.radians(lat))
        dy = np.asarray(lat) - lat0
        norm = np.maximum(np.hypot(dx, dy), 1e-300)
        inside = square_fraction_below(r_0 - sep, step * np.abs(dx) / norm, step * np.abs(dy) / norm)
        # The fraction has mean 0 and variance step^2 / 12 across the edge whatever its angle: the
        # area is pi (r_0^2 + step^2 / 12), the ramp's normalisation of `evaluate`.
        return inside * self.evaluate(0.0, r_0, min(step / max(r_0, 1e-12), 1.0))

    def oversampling(self, pixel_scale: float) -> int:
        # Resolve the edge: >= 20 sub-pixels across the radius (area error ~0.5 %); small disks
        # have small boxes, so allow up to 64 sub-pixels per axis.
        return int(np.clip(math.ceil(20.0 * pixel_scale / max(self.r_0.value, 1e-12)), 4, 64))


class Shell(SpatialModel):
    """Projected uniformly emitting spherical shell between ``radius`` and ``radius + width``."""

    tag = "shell"
    gammapy_tags = ("ShellSpatialModel", "Shell", "shell")
    radius = ParameterSpec(1.0, "deg", min=0.0)
    width = ParameterSpec(0.2, "deg", min=0.0)

    @staticmethod
    def evaluate(sep, radius, width):
        # Line-of-sight chord lengths through the shell; the volume integral (2 pi / 3)(r_out^3 -
        # r_in^3) * 2 normalises it (small-angle, deg -> sr via radians).
        r_in, r_out = np.radians(radius), np.radians(radius + width)
        t = np.radians(sep)
        outer = np.sqrt(np.clip(r_out**2 - t**2, 0.0, None))
        inner = np.sqrt(np.clip(r_in**2 - t**2, 0.0, None))
        norm = 3.0 / (2.0 * np.pi * (r_out**3 - r_in**3))
        return norm * (outer - inner)

    def evaluation_radius(self) -> float:
        return self.radius.value + self.width.value

    def oversampling(self, pixel_scale: float) -> int:
        # >= 10 sub-pixels across the shell's width (its sharp outer edge dominates the error).
        return int(np.clip(math.ceil(10.0 * pixel_scale / max(self.width.value, 1e-12)), 2, 64))


class Template(SpatialModel):
    """A surface-brightness map (any units; normalised to a unit integral when ``normalize``).

    Parameters
    ----------
    data : numpy.ndarray
        2-D image (n_lat, n_lon), proportional to the surface brightness.
    wcs : astropy.wcs.WCS
        Celestial WCS of ``data``.
    frame : {"galactic", "icrs"}
        Frame of the WCS.
    normalize : bool
        Scale so that the integral over the template's pixels is 1 (recommended).
    filename : str, optional
        FITS file the template came from (written back in YAML).
    """

    tag = "template"
    gammapy_tags = ("TemplateSpatialModel", "Template", "template")
    lon_0 = lat_0 = None  # no centre: a template has no parameters

    def __init__(self, data: np.ndarray, wcs: Any, *, frame: str = "icrs", normalize: bool = True,
                 filename: str | None = None) -> None:
        data = np.asarray(data, dtype=float)
        if data.ndim != 2:
            raise GeometryError(f"template map must be 2-D (n_lat, n_lon), got shape {data.shape}")
        super().__init__(frame=frame)
        self.wcs = wcs.celestial
        self.filename = filename
        self.normalize = normalize
        if normalize:
            from astropy.wcs.utils import proj_plane_pixel_area

            # Template solid angle per pixel: the projection-plane area (deg^2) at the reference
            # pixel; exact enough for the small fields where templates are used.
            omega = proj_plane_pixel_area(self.wcs) * (np.pi / 180.0) ** 2
            total = np.nansum(data) * omega
            if not total > 0:
                raise ModelError("template map has no positive flux to normalise")
            data = data / total
        self.data = data

    @classmethod
    def from_map(cls, image: Any, *, normalize: bool = True) -> Template:
        """From a 2-D xgamma map (DataArray with a length-1 ``energy`` dim allowed)."""
        from xgamma.maps import map_geometry

        geometry = map_geometry(image)
        data = np.asarray(image.squeeze(drop=True).values if image.ndim == 3 else image.values)
        return cls(data, geometry.wcs, frame=geometry.frame, normalize=normalize)

    def _extra_dict(self) -> dict[str, Any]:
        return {"frame": self.frame, "filename": self.filename, "normalize": self.normalize}

    def _extra_key(self) -> tuple:
        return (self.frame, self.filename, self.normalize, self.data.shape, self.data.tobytes())

    def integrate_grid(self, grid: PixelGrid, *, oversample: int | None = None):
        from scipy.ndimage import map_coordinates

        f = oversample or 1
        box = (slice(0, grid.shape[0]), slice(0, grid.shape[1]))
        lon, lat = grid.subpixel_world(box, f)
        if grid.frame != self.frame:
            from astropy.coordinates import SkyCoord

            c = SkyCoord(lon, lat, unit="deg", frame=grid.frame).transform_to(self.frame)
            lon, lat = c.spherical.lon.deg, c.spherical.lat.deg
        x, y = self.wcs.wcs_world2pix(lon.ravel(), lat.ravel(), 0)
        # Bilinear interpolation of the surface brightness; zero outside the template.
        sb = map_coordinates(np.nan_to_num(self.data), [y, x], order=1, mode="constant", cval=0.0)
        sb = sb.reshape(lon.shape)
        ny, nx = grid.shape
        return box, sb.reshape(ny, f, nx, f).mean(axis=(1, 3)) * grid.solid_angle
