"""``xgamma info``: observation table and IRF summary of a DL3 data store."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence

__all__ = ["datastore_info"]

_COLUMNS = ("OBS_ID", "OBJECT", "RA_PNT", "DEC_PNT", "ZEN_PNT", "LIVETIME", "DEADC", "EVENT_COUNT")


def _irf_summary(observation) -> list[str]:
    import astropy.units as u

    lines = [f"observation {observation.obs_id}: pointing RA {observation.pointing.ra.deg:.3f} deg, "
             f"Dec {observation.pointing.dec.deg:.3f} deg, livetime {observation.livetime.to(u.min):.1f}"]
    for kind in ("aeff", "bkg", "psf", "edisp"):
        try:
            irf = getattr(observation, kind)
        except Exception as error:  # report any unreadable IRF and go on with the others
            lines.append(f"  {kind:6s} unreadable: {error}")
            continue
        lines.append(f"  {kind:6s} {irf!r}")
    aeff = observation.aeff
    if aeff.lo_threshold is not None or aeff.hi_threshold is not None:
        lines.append(f"  safe energy range (aeff LO_THRES..HI_THRES): {aeff.lo_threshold} .. {aeff.hi_threshold}")
    return lines


def datastore_info(path: str | os.PathLike, *, obs_ids: Sequence[int] | None = None) -> str:
    """Text summary: number of runs, objects, the observation table and (optionally) IRFs of some runs.

    Parameters
    ----------
    path : path-like
        Data store folder.
    obs_ids : sequence of int, optional
        Observations whose IRFs are summarised. Default: the first one.
    """
    from xgamma.io.datastore import DataStore

    store = DataStore(path)
    table = store.obs_table
    columns = [c for c in _COLUMNS if c in table.colnames]
    lines = [repr(store), "HDU classes: " + ", ".join(f"{k} ({n})" for k, n in Counter(str(c) for c in store.hdu_table["HDU_CLASS"]).items())]
    if "OBJECT" in table.colnames:
        objects = Counter(str(o) for o in table["OBJECT"])
        lines.append("objects: " + ", ".join(f"{name} ({n})" for name, n in objects.most_common()))
    lines.append("")
    lines.extend(table[columns].pformat(max_lines=60, max_width=160))
    lines.append("")
    for obs_id in obs_ids or store.obs_ids[:1]:
        lines.extend(_irf_summary(store.observation(obs_id)))
    return "\n".join(lines)
