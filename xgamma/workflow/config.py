"""Analysis configuration: YAML with environment variables, validated key by key.

Every key maps onto one argument of the Python API (see ``docs/config.md``). Errors name the key
path (``maps.offset_max``), the bad value and what was expected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from xgamma.exceptions import ConfigError

__all__ = ["Config", "load_config", "validate_config", "dump_config", "parse_angle", "parse_energy", "SCHEMA",
           "is_streamed", "STREAMED_FORMATS"]

_ENV = re.compile(r"\$\{([^}]+)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _expand(value: Any, path: str) -> Any:
    if isinstance(value, str):
        def replace(match: re.Match) -> str:
            name = match.group(1) or match.group(2)
            if name not in os.environ:
                raise ConfigError(f"{path}: environment variable ${{{name}}} is not set")
            return os.environ[name]

        return _ENV.sub(replace, value)
    if isinstance(value, Mapping):
        return {k: _expand(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _quantity(value: Any, path: str, unit: str):
    import numpy as np

    from xgamma.units import parse_quantity

    if isinstance(value, bool):  # YAML `true` is no quantity (it would be 1 deg)
        raise ConfigError(f"{path}: expected a quantity in {unit} (e.g. '1.5 {unit}'), got {value!r}")
    quantity = parse_quantity(value, unit, name=path, error=ConfigError)
    if not quantity.isscalar or not np.isfinite(quantity.value):
        raise ConfigError(f"{path}: expected one finite quantity in {unit}, got {value!r}")
    return quantity


def parse_angle(value: Any, path: str):
    """An angle Quantity from '0.02 deg', a Quantity or a number (degrees)."""
    return _quantity(value, path, "deg")


def parse_energy(value: Any, path: str):
    """An energy Quantity from '1 TeV', a Quantity or a number (TeV)."""
    return _quantity(value, path, "TeV")


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
        raise ConfigError(f"{path}: expected a finite number, got {value!r}")
    return float(value)


def _fraction(value: Any, path: str) -> float:
    number = _number(value, path)
    if not 0 < number < 1:
        raise ConfigError(f"{path}: expected a fraction between 0 and 1 (exclusive), got {value!r}")
    return number


def _positive_int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{path}: expected a positive integer, got {value!r}")
    return value


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{path}: expected a string, got {value!r}")
    return value


def _boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{path}: expected true or false, got {value!r}")
    return value


def _position(value: Any, path: str) -> Any:
    from astropy.coordinates import SkyCoord

    if isinstance(value, SkyCoord):
        if value.frame.name not in ("galactic", "icrs") or not value.isscalar:
            raise ConfigError(f"{path}: expected one position in the 'galactic' or 'icrs' frame, got {value!r}")
        return value
    section = _section(value, path, {"lon": parse_angle, "lat": parse_angle, "frame": _string}, required=("lon", "lat"))
    frame = section.get("frame", "galactic")
    if frame not in ("galactic", "icrs"):
        raise ConfigError(f"{path}.frame: expected 'galactic' or 'icrs', got {frame!r}")
    if not abs(section["lat"].to_value("deg")) <= 90:
        raise ConfigError(f"{path}.lat: a latitude must be within [-90, 90] deg, got {section['lat']}")
    return SkyCoord(section["lon"], section["lat"], frame=frame)


def _list_of(item: Callable[[Any, str], Any], *, min_items: int = 0) -> Callable[[Any, str], list]:
    def parse(value: Any, path: str) -> list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        if len(value) < min_items:
            raise ConfigError(f"{path}: expected at least {min_items} item(s), got an empty list")
        return [item(v, f"{path}[{i}]") for i, v in enumerate(value)]

    return parse


def _width(value: Any, path: str) -> list:
    if isinstance(value, list):
        if len(value) != 2:
            raise ConfigError(f"{path}: expected [lon width, lat width], got {value!r}")
        return [_positive_angle(v, f"{path}[{i}]") for i, v in enumerate(value)]
    angle = _positive_angle(value, path)
    return [angle, angle]


def _obs_id(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{path}: expected an integer observation id, got {value!r}")
    return value


def _passthrough(value: Any, path: str) -> Any:
    """Validated later by the component that reads it (models, plugins)."""
    return value


def _section(value: Any, path: str, schema: Mapping[str, Any], required: tuple[str, ...] = ()) -> dict:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: expected a mapping of keys {sorted(schema)}, got {value!r}")
    unknown = [k for k in value if k not in schema]
    if unknown:
        where = f"{path}.{unknown[0]}" if path else str(unknown[0])
        raise ConfigError(f"unknown key {where!r}; known keys{' of ' + path if path else ''}: {sorted(schema)}")
    missing = [k for k in required if k not in value]
    if missing:
        where = f"{path}.{missing[0]}" if path else missing[0]
        raise ConfigError(f"missing key {where!r}")
    out = {}
    for key, item in value.items():
        parser = schema[key]
        sub = f"{path}.{key}" if path else key
        out[key] = _section(item, sub, parser) if isinstance(parser, Mapping) else parser(item, sub)
    return out


def _datastore(value: Any, path: str) -> Path:
    folder = Path(value if isinstance(value, os.PathLike) else _string(value, path)).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"{path}: data store directory not found: {folder}")
    return folder


def _energy_axis(value: Any, path: str) -> dict:
    section = _section(value, path, {"min": parse_energy, "max": parse_energy, "nbins": _positive_int},
                       required=("min", "max", "nbins"))
    if not section["min"].value > 0:
        raise ConfigError(f"{path}.min: must be positive (the bins are logarithmic), got {section['min']}")
    if not section["min"] < section["max"]:
        raise ConfigError(f"{path}: min ({section['min']}) must be below max ({section['max']})")
    return section


def _positive_angle(value: Any, path: str):
    angle = parse_angle(value, path)
    if not angle.value > 0:
        raise ConfigError(f"{path}: must be positive, got {value!r}")
    return angle


def _safe_energy(value: Any, path: str) -> Any:
    """A `SafeEnergy` from a method name, a list of them or a mapping (methods + parameters)."""
    from xgamma.makers.safe_energy import SafeEnergy

    if value is None or isinstance(value, SafeEnergy):
        return value
    if isinstance(value, Mapping):
        value = _section(value, path, {"methods": _passthrough, "aeff_percent": _number, "bias_percent": _number,
                                       "position": _position, "fixed_offset": parse_angle,
                                       "offset_max": _positive_angle}, required=("methods",))
    return SafeEnergy.parse(value)


def _spectrum(value: Any, path: str) -> dict:
    section = _section(value, path, {"type": _string, "index": _number})
    if section.get("type", "powerlaw") != "powerlaw":
        raise ConfigError(f"{path}.type: only 'powerlaw' is supported, got {section['type']!r}")
    return {"type": "powerlaw", "index": section.get("index", 2.0)}


def _point_method(value: Any, path: str) -> str:
    if value not in ("exact", "bilinear"):
        raise ConfigError(f"{path}: expected 'exact' or 'bilinear', got {value!r}")
    return value


def _angles(value: Any, path: str) -> Any:
    """One positive angle, or a list of them."""
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"{path}: expected an angle or a non-empty list of angles")
        return [_positive_angle(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return _positive_angle(value, path)


#: ``output.format`` values written chunk by chunk (`xgamma.workflow.mosaic`).
STREAMED_FORMATS = ("zarr", "fits-tiles")


def _output_format(value: Any, path: str) -> str:
    formats = ("fits", *STREAMED_FORMATS)
    if value not in formats:
        raise ConfigError(f"{path}: expected one of {list(formats)}, got {value!r}")
    return value


def is_streamed(config: Mapping[str, Any]) -> bool:
    """Whether a configuration asks for products streamed chunk by chunk (``output.format``)."""
    return config.get("output", {}).get("format", "fits") in STREAMED_FORMATS


def _fit_on(value: Any, path: str) -> str:
    if value not in ("images", "cube"):
        raise ConfigError(f"{path}: expected 'images' or 'cube', got {value!r}")
    return value


def _positive_number(value: Any, path: str) -> float:
    number = _number(value, path)
    if not number > 0:
        raise ConfigError(f"{path}: expected a positive number, got {value!r}")
    return number


def _non_negative_number(value: Any, path: str) -> float:
    number = _number(value, path)
    if number < 0:
        raise ConfigError(f"{path}: expected a number >= 0, got {value!r}")
    return number


def _morphology(value: Any, path: str) -> str:
    from xgamma.estimators.ts_kernel import MORPHOLOGIES

    if value not in MORPHOLOGIES:
        raise ConfigError(f"{path}: expected one of {list(MORPHOLOGIES)}, got {value!r}")
    return value


SCHEMA: dict[str, Any] = {
    "data": {"datastore": _datastore, "obs_ids": _list_of(_obs_id, min_items=1), "object": _string,
             "cone": {"center": _position, "radius": _positive_angle}},
    "geometry": {"center": _position, "width": _width, "binsz": _positive_angle, "projection": _string,
                 "energy": _energy_axis, "energy_true": _energy_axis},
    "maps": {"offset_max": _positive_angle, "safe_energy": _safe_energy, "chunks": _positive_int,
             "squash": {"spectrum": _spectrum}},
    "psf": {"position": _position, "spectrum": _spectrum, "max_radius": _positive_angle,
            "containment": _fraction},
    "models": _list_of(_passthrough),
    "background_model": {"norm": _passthrough, "tilt": _passthrough},
    "fit": {"on": _fit_on, "edisp": _boolean, "minos": _list_of(_string), "point_method": _point_method,
            "spectral_exposure": _boolean},
    "exclusion": {"regions": _list_of(_string), "threshold": _number, "dilation": _positive_angle,
                  "max_iterations": _positive_int},
    "ring": {"method": _string, "r_in": _positive_angle, "width": _positive_angle, "offset_max": _positive_angle,
             "r_out_max": _positive_angle, "stepsize": _positive_angle, "theta": _positive_angle,
             "threshold_alpha": _number},
    "significance": {"correlation_radius": _angles, "correlate_off": _boolean},
    "detect": {"threshold": _positive_number, "max_sources": _positive_int, "min_distance": _positive_angle,
               "morphologies": _list_of(_morphology, min_items=1), "sigma": _positive_angle,
               "max_sigma": _positive_angle, "extension_ts": _non_negative_number, "index": _number,
               "max_radius": _positive_angle},
    "plots": _boolean,
    "output": {"format": _output_format},
}

_REQUIRED = {"data": ("datastore",), "geometry": ("center", "width", "binsz", "energy"), "maps": ("offset_max",)}


class Config(dict):
    """A validated configuration: a dict of sections with converted values (`validate_config`).

    `xgamma.workflow.run_analysis` validates any other mapping it is given.
    """


def validate_config(raw: Mapping[str, Any], *, required: Sequence[str] = ("data", "geometry", "maps")) -> Config:
    """Check a configuration mapping key by key and convert values (Quantities, SkyCoords).

    Parameters
    ----------
    raw : mapping
        Sections as read from YAML. Values already converted (Quantities, SkyCoords, paths)
        are accepted too.
    required : sequence of str
        Sections that must be present. Default: ``data``, ``geometry`` and ``maps``
        (`run_analysis` drops ``data`` / ``geometry`` when it is given observations / a geometry).

    Returns
    -------
    config : `Config`

    Raises
    ------
    ConfigError
        Naming the key path of the first unknown key, missing key or bad value.
    """
    raw = _expand(raw, "")
    config = _section(raw, "", SCHEMA, required=tuple(required))
    for section, keys in _REQUIRED.items():
        for key in keys:
            if section in config and key not in config[section]:
                raise ConfigError(f"missing key '{section}.{key}'")
    if "ring" in config and "significance" not in config:
        config["significance"] = {}
    radius = config.get("significance", {}).get("correlation_radius")
    if isinstance(radius, list) and config.get("output", {}).get("format", "fits") == "fits":
        raise ConfigError("significance.correlation_radius: several radii need output.format zarr or fits-tiles "
                          "(the FITS products hold one significance map)")
    return Config(config)


#: Most YAML nodes a configuration may expand to once aliases are followed: a real configuration
#: has a few hundred; an alias bomb ("billion laughs") has billions.
MAX_YAML_NODES = 100_000


def _yaml_loader():
    """A safe YAML loader: YAML 1.2 booleans (only true/false, so that ``on: images`` stays a key)
    and duplicate keys refused (the second would silently win)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.setdefault(key, line)
                except TypeError:  # an unhashable key: let PyYAML report it
                    continue
                if first != line:
                    raise ConfigError(f"duplicate key {key!r} (lines {first} and {line}): the second would "
                                      "silently replace the first")
            return super().construct_mapping(node, deep=deep)

    Loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )
    return Loader


def _expanded_size(node: Any) -> int:
    """Number of YAML nodes once aliases are followed (each distinct node counted once per use)."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(item: Any) -> int:
        key = id(item)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ConfigError("a YAML alias refers to a node containing itself")
        active.add(key)
        children = item.value if isinstance(item.value, list) else []
        total = 1
        for child in children:
            total += sum(size(c) for c in child) if isinstance(child, tuple) else size(child)
            if total > MAX_YAML_NODES:
                raise ConfigError(f"the configuration expands to more than {MAX_YAML_NODES} YAML nodes "
                                  "once aliases are followed (an alias bomb?)")
        active.discard(key)
        sizes[key] = total
        return total

    return size(node)


def read_yaml(path: str | os.PathLike) -> Any:
    """Read a YAML file safely: no tags beyond the standard ones, no duplicate keys, bounded size.

    The file may be UTF-8 (with or without a byte-order mark) or UTF-16 / UTF-32 with a byte-order
    mark. Booleans follow YAML 1.2 (only ``true``/``false``).

    Raises
    ------
    ConfigError
        Naming the file and the line, or the problem (encoding, a ``!!python/...`` tag, a
        duplicate key, nesting too deep, an alias bomb).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file not found: {path}")
    try:
        with path.open("rb") as stream:
            loader = _yaml_loader()(stream)
            try:
                node = loader.get_single_node()
                if node is None:
                    return None
                _expanded_size(node)
                return loader.construct_document(node)
            finally:
                loader.dispose()
    except OSError as error:
        raise ConfigError(f"cannot read configuration file {path}: {error.strerror}") from None
    except yaml.reader.ReaderError as error:
        raise ConfigError(f"{path}: not UTF-8 text (nor UTF-16 with a byte-order mark): {error}") from None
    except yaml.constructor.ConstructorError as error:
        tag = re.search(r"tag '([^']*)'", str(error.problem))
        if tag:  # e.g. !!python/object/apply: configurations are plain data, never code
            name = tag.group(1).replace("tag:yaml.org,2002:", "!!")
            raise ConfigError(f"{path}: line {error.problem_mark.line + 1}: YAML tag {name!r} is not allowed "
                              "(a configuration holds plain data only)") from None
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    except RecursionError:
        raise ConfigError(f"{path}: the YAML is nested too deeply") from None
    except ConfigError as error:  # duplicate keys, alias bombs
        raise ConfigError(f"{path}: {error}") from None


def load_config(path: str | os.PathLike) -> Config:
    """Read and validate a YAML configuration file (``${VAR}`` environment variables expanded).

    See `read_yaml` for what the file may contain.
    """
    raw = read_yaml(path)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: the configuration must be a mapping of sections, got {type(raw).__name__}")
    return validate_config(raw)


def _plain_value(value: Any) -> Any:
    """A validated configuration value as YAML-ready data (the form `validate_config` reads back)."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    if isinstance(value, Mapping):
        return {str(k): _plain_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_value(v) for v in value]
    if isinstance(value, SkyCoord):
        spherical = value.spherical
        return {"lon": f"{float(spherical.lon.deg)!r} deg", "lat": f"{float(spherical.lat.deg)!r} deg",
                "frame": value.frame.name}
    if isinstance(value, u.Quantity):
        return f"{float(value.value)!r} {value.unit.to_string()}".strip() if value.isscalar else [
            _plain_value(v) for v in value]
    if isinstance(value, os.PathLike):
        return str(Path(value).absolute())
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "to_dict"):  # a model object given from Python
        return _plain_value(value.to_dict())
    return str(value)


def dump_config(config: Mapping[str, Any]) -> str:
    """YAML text of a validated configuration: environment variables and paths resolved.

    ``validate_config(yaml.safe_load(dump_config(config)))`` gives the same configuration
    (``xgamma run`` saves it as ``config.yaml`` next to the products).
    """
    import yaml

    return yaml.safe_dump(_plain_value(dict(config)), sort_keys=False, default_flow_style=None, width=100)
