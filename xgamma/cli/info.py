"""``xgamma info``: observation table and IRF summary of a DL3 data store."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence

from xgamma.exceptions import XgammaError

__all__ = ["datastore_info"]

_COLUMNS = ("OBS_ID", "OBJECT", "RA_PNT", "DEC_PNT", "ZEN_PNT", "LIVETIME", "DEADC", "EVENT_COUNT")


def _irf_summary(observation) -> list[str]:
    import astropy.units as u

    lines = [f"observation {observation.obs_id}: pointing RA {observation.pointing.ra.deg:.3f} deg, "
             f"Dec {observation.pointing.dec.deg:.3f} deg, livetime {observation.livetime.to(u.min):.1f}"]
    irfs = {}
    for kind in ("aeff", "bkg", "psf", "edisp"):
        try:
            irfs[kind] = getattr(observation, kind)
        except XgammaError as error:  # report an unreadable IRF and go on with the others
            lines.append(f"  {kind:6s} unreadable: {error}")
            continue
        lines.append(f"  {kind:6s} {irfs[kind]!r}")
    aeff = irfs.get("aeff")
    if aeff is not None and (aeff.lo_threshold is not None or aeff.hi_threshold is not None):
        lines.append(f"  safe energy range (aeff LO_THRES..HI_THRES): {aeff.lo_threshold} .. {aeff.hi_threshold}")
    return lines


def datastore_info(path: str | os.PathLike, *, obs_ids: Sequence[int] | None = None, all_rows: bool = False) -> str:
    """Text summary: number of runs, objects, the observation table and the IRFs of some runs.

    Parameters
    ----------
    path : path-like
        Data store folder.
    obs_ids : sequence of int, optional
        Show only these observations (table rows and IRFs). Default: every row of the table
        and the IRFs of the first observation.
    all_rows : bool
        Print every row of the table (default: at most 60 lines).
    """
    from xgamma.io.datastore import DataStore

    store = DataStore(path)
    if obs_ids:
        store = store.select(obs_ids=list(obs_ids))
    table = store.obs_table
    columns = [c for c in _COLUMNS if c in table.colnames]
    lines = [repr(store), "HDU classes: " + ", ".join(f"{k} ({n})" for k, n in Counter(str(c) for c in store.hdu_table["HDU_CLASS"]).items())]
    if "OBJECT" in table.colnames:
        objects = Counter(str(o) for o in table["OBJECT"])
        lines.append("objects: " + ", ".join(f"{name} ({n})" for name, n in objects.most_common()))
    lines.append("")
    lines.extend(table[columns].pformat(max_lines=-1 if all_rows else 60, max_width=160))
    lines.append("")
    for obs_id in obs_ids or store.obs_ids[:1]:
        lines.extend(_irf_summary(store.observation(obs_id)))
    return "\n".join(lines)
