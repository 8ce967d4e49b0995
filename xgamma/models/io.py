"""Read and write model files in Gammapy's YAML layout.

A file holds ``components:``, a list of ``SkyModel`` entries (``name``, ``spectral`` and
``spatial``, each ``{type, [frame], parameters: [{name, value, unit, error, min, max, frozen}]}``)
and ``FoVBackgroundModel`` entries (``spectral: {type: PowerLawNormSpectralModel, ...}``).
Parameters missing from a file take the class defaults (Gammapy omits default fields).
The xgamma config form, ``{type: powerlaw2, index: {value: 2, frozen: true}, emin: 0.1 TeV}``,
is accepted wherever a ``parameters`` list is.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from xgamma.exceptions import ModelError, XgammaError
from xgamma.geometry.sky import wcs_frame
from xgamma.models.background_model import BackgroundModel
from xgamma.models.registry import get_spatial_model_class, get_spectral_model_class
from xgamma.models.sky_model import SkyModel

__all__ = ["read_models", "write_models", "models_from_dict", "models_to_dict", "sky_model_from_dict",
           "spectral_model_from_dict", "spatial_model_from_dict", "background_model_from_dict"]

@contextmanager
def _context(where: str):
    """Prefix xgamma errors raised inside with ``where`` (file, model), keeping their type."""
    try:
        yield
    except XgammaError as exc:
        if str(exc).startswith(where):
            raise
        raise type(exc)(f"{where}: {exc}") from None


# Gammapy's elliptical-shape parameters: accepted only at their circular defaults.
_CIRCULAR_ONLY = {"e": 0.0, "phi": None}


def _param_inputs(entry: dict[str, Any], cls: type, where: str) -> dict[str, Any]:
    """Map parameter name -> input (mapping/number/string) from either layout."""
    known = set(cls.parameter_names)
    if "parameters" in entry:
        items = {}
        for p in entry["parameters"]:
            if not isinstance(p, dict) or "name" not in p:
                raise ModelError(f"{where}: each parameter must be a mapping with a 'name', got {p!r}")
            items[p["name"]] = {k: v for k, v in p.items() if k != "name"}
    else:
        items = {k: v for k, v in entry.items() if k not in ("type", "frame", "filename", "normalize", "unit")}
    out = {}
    for name, value in items.items():
        if name not in known and name in _CIRCULAR_ONLY:
            v = value.get("value", 0.0) if isinstance(value, dict) else value
            if _CIRCULAR_ONLY[name] is not None and float(v) != _CIRCULAR_ONLY[name]:
                raise ModelError(f"{where}: parameter {name!r}={v}: elongated models are not supported")
            continue
        if name not in known:
            raise ModelError(f"{where}: unknown parameter {name!r} for {cls.__name__}; "
                             f"known: {list(cls.parameter_names)}")
        out[name] = value
    return out


def spectral_model_from_dict(entry: dict[str, Any], *, where: str = "spectral"):
    """A spectral model from ``{type, parameters...}`` (xgamma name or Gammapy tag)."""
    if "type" not in entry:
        raise ModelError(f"{where}: missing 'type'")
    cls = get_spectral_model_class(entry["type"])
    with _context(where):
        return cls(**_param_inputs(entry, cls, where))


def spatial_model_from_dict(entry: dict[str, Any], *, where: str = "spatial", base_dir: Path | None = None):
    """A spatial model from ``{type, frame, parameters...}`` (xgamma name or Gammapy tag)."""
    if "type" not in entry:
        raise ModelError(f"{where}: missing 'type'")
    cls = get_spatial_model_class(entry["type"])
    if cls.tag == "template":
        return _read_template(entry, where=where, base_dir=base_dir)
    frame = entry.get("frame", "icrs")
    frame = {"fk5": "icrs", "gal": "galactic"}.get(frame, frame)
    with _context(where):
        return cls(frame=frame, **_param_inputs(entry, cls, where))


def _read_template(entry: dict[str, Any], *, where: str, base_dir: Path | None):
    from astropy.io import fits
    from astropy.wcs import WCS

    from xgamma.models.spatial import Template

    filename = entry.get("filename")
    if not filename:
        raise ModelError(f"{where}: template model needs a 'filename'")
    path = Path(os.path.expandvars(filename))
    if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
        path = base_dir / path
    if not path.exists():
        raise ModelError(f"{where}: template file {str(path)!r} not found")
    with fits.open(path) as hdul:
        hdu = next((h for h in hdul if h.data is not None and h.data.ndim >= 2), None)
        if hdu is None:
            raise ModelError(f"{where}: {path} has no image HDU")
        data = hdu.data
        if data.ndim == 3 and data.shape[0] == 1:
            data = data[0]
        if data.ndim != 2:
            raise ModelError(f"{where}: {path} HDU {hdu.name!r} is {data.ndim}-D; only 2-D templates are supported")
        wcs = WCS(hdu.header).celestial
    return Template(data, wcs, frame=wcs_frame(wcs), normalize=bool(entry.get("normalize", True)), filename=filename)


def sky_model_from_dict(entry: dict[str, Any], *, base_dir: Path | None = None) -> SkyModel:
    """A :class:`SkyModel` from a Gammapy component or an xgamma config entry."""
    name = entry.get("name", "source")
    for key in ("spectral", "spatial"):
        if key not in entry:
            raise ModelError(f"model {name!r}: missing {key!r}")
    spectral = spectral_model_from_dict(entry["spectral"], where=f"model {name!r} spectral")
    spatial = spatial_model_from_dict(entry["spatial"], where=f"model {name!r} spatial", base_dir=base_dir)
    return SkyModel(spectral, spatial, name=name)


def background_model_from_dict(entry: dict[str, Any], *, name: str | None = None) -> BackgroundModel:
    """A :class:`BackgroundModel` from a ``FoVBackgroundModel`` component or ``{norm, tilt}`` config."""
    datasets = entry.get("datasets_names")
    name = entry.get("name") or name or (f"{datasets[0]}-bkg" if datasets else "background")
    spectral = entry.get("spectral", {k: v for k, v in entry.items()
                                      if k not in ("name", "type", "datasets_names")})
    if "type" in spectral and spectral["type"] not in BackgroundModel.gammapy_tags + (
            "PowerLawNormSpectralModel", "PowerLawNorm", "pl-norm"):
        raise ModelError(f"background model {name!r}: spectral type {spectral['type']!r} is not supported; "
                         "known: PowerLawNormSpectralModel")
    return BackgroundModel(name=name, datasets_names=datasets,
                           **_param_inputs(spectral, BackgroundModel, f"background model {name!r}"))


def models_from_dict(data: dict[str, Any], *, base_dir: Path | None = None) -> list:
    """Models from a Gammapy-layout mapping ``{"components": [...]}``."""
    if not isinstance(data, dict) or "components" not in data:
        raise ModelError("model file: expected a mapping with a 'components' list")
    out = []
    for i, entry in enumerate(data["components"]):
        kind = entry.get("type", "SkyModel")
        if kind == "SkyModel":
            out.append(sky_model_from_dict(entry, base_dir=base_dir))
        elif kind in BackgroundModel.gammapy_tags:
            out.append(background_model_from_dict(entry))
        else:
            raise ModelError(f"model file: component {i} has unknown type {kind!r}; "
                             "known: SkyModel, FoVBackgroundModel")
    return out


def models_to_dict(models: list) -> dict[str, Any]:
    """Gammapy-layout mapping ``{"components": [...]}``.

    Raises
    ------
    ModelError
        For a template model built in memory (no ``filename`` to refer to).
    """
    for m in models:
        if getattr(getattr(m, "spatial", None), "tag", "") == "template" and not m.spatial.filename:
            raise ModelError(f"model {m.name!r}: its template has no file; write the map to FITS and build "
                             "the model with Template(..., filename=...) before writing the model file")
    return {"components": [m.to_dict() for m in models]}


def read_models(path: str | os.PathLike) -> list:
    """Read a YAML model file (Gammapy layout).

    Raises
    ------
    ModelError
        If the file is missing, not YAML, or holds an unknown model type or parameter.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ModelError(f"cannot read model file {str(path)!r}: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ModelError(f"model file {str(path)!r} is not valid YAML: {exc}") from None
    with _context(str(path)):
        return models_from_dict(data, base_dir=path.parent)


def write_models(models: list, path: str | os.PathLike, *, overwrite: bool = False,
                 dataset_name: str = "stacked") -> None:
    """Write models to a YAML file Gammapy reads (``Models.read``).

    Gammapy needs every background model to name its dataset: one that names none is written
    with ``datasets_names: [dataset_name]`` (the models passed in are not changed).
    """
    import yaml

    path = Path(path)
    if path.exists() and not overwrite:
        raise ModelError(f"{path} exists; pass overwrite=True to replace it")
    named = []
    for model in models:
        if isinstance(model, BackgroundModel) and not model.datasets_names:
            model = model.copy()
            model.datasets_names = [dataset_name]
        named.append(model)
    path.write_text(yaml.safe_dump(models_to_dict(named), sort_keys=False))
