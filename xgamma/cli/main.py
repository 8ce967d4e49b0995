"""The ``xgamma`` command line. Heavy modules are imported inside the commands."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xgamma",
        description="Gamma-ray sky-map analysis of IACT DL3 data with xarray and dask.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def scheduler_options(p: argparse.ArgumentParser) -> None:
        group = p.add_mutually_exclusive_group()
        group.add_argument("--workers", type=int, metavar="N",
                           help="run on a local dask.distributed cluster of N single-threaded workers")
        group.add_argument("--scheduler", metavar="ADDRESS",
                           help="run on an existing dask.distributed scheduler (e.g. tcp://host:8786)")
        p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or log messages")

    run = sub.add_parser("run", help="run the analysis stages of a YAML configuration")
    run.add_argument("config", type=Path, help="YAML configuration file")
    run.add_argument("--output", "-o", type=Path, required=True, help="output folder")
    scheduler_options(run)

    demo = sub.add_parser("demo", help="simulate a small data store and run the whole reference workflow")
    demo.add_argument("--data", type=Path, help="use this DL3 data store instead of simulating one")
    demo.add_argument("--output", "-o", type=Path, default=Path("xgamma-demo"),
                      help="output folder (default: ./xgamma-demo)")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the simulation (default: 0)")
    scheduler_options(demo)

    info = sub.add_parser("info", help="observation table and IRF summary of a DL3 data store")
    info.add_argument("datastore", type=Path, help="folder with hdu-index and obs-index files")
    info.add_argument("--obs-id", type=int, action="append", help="show IRFs of this observation")

    sub.add_parser("plugins", help="list installed models, background estimators and IRF readers")

    simulate = sub.add_parser("simulate", help="simulate DL3 data stores")
    kinds = simulate.add_subparsers(dest="kind", metavar="KIND", required=True)
    survey = kinds.add_parser("survey", help="a Galactic-plane survey of many runs (H.E.S.S.-survey-like tiling)")
    survey.add_argument("--runs", type=int, required=True, metavar="N", help="number of runs")
    survey.add_argument("--output", "-o", type=Path, required=True, help="data store folder to create")
    survey.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    survey.add_argument("--l-range", type=float, nargs=2, default=(250.0, 65.0), metavar=("FIRST", "LAST"),
                        help="longitude range in deg, through increasing longitude (default: 250 65)")
    survey.add_argument("--no-diffuse", action="store_true", help="no diffuse emission")
    survey.add_argument("--overwrite", action="store_true", help="replace an existing simulated survey")
    return parser


@contextlib.contextmanager
def _scheduler(args: argparse.Namespace) -> Iterator[None]:
    """Make a dask.distributed client current for the duration of a command, if asked for."""
    workers = getattr(args, "workers", None)
    address = getattr(args, "scheduler", None)
    if workers is None and address is None:
        import dask

        if dask.config.get("scheduler", None):
            yield
            return
        from xgamma.workflow.progress import threaded_get

        # dask's default for arrays, as a function: otherwise every compute (e.g. `.values` of a
        # lazy map) imports distributed (~0.3 s) to look for a client that cannot exist here.
        with dask.config.set(scheduler=threaded_get()):
            yield
        return
    from distributed import Client

    from xgamma.cluster import local_cluster

    if address is not None:
        with Client(address) as client:
            logging.getLogger("xgamma").info("dask scheduler %s", client.scheduler.address)
            yield
        return
    if workers < 1:
        raise SystemExit("xgamma: error: --workers must be >= 1")
    with local_cluster(workers) as cluster, Client(cluster):
        yield


def _cmd_run(args: argparse.Namespace) -> int:
    from xgamma.workflow import load_config, run_analysis

    config = load_config(args.config)
    with _scheduler(args):
        analysis = run_analysis(config, output=args.output, progress=not args.quiet)
    if not args.quiet:
        for name, path in analysis.products.items():
            print(f"{name:>14}: {path}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from xgamma.cli.demo import DemoRecoveryError, run_demo

    with _scheduler(args):
        try:
            summary = run_demo(output=args.output, data=args.data, seed=args.seed, progress=not args.quiet)
        except DemoRecoveryError as error:
            print(error.summary)  # the pulls, then the one-line error and exit status 1
            raise
    if not args.quiet:
        print(summary)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from xgamma.cli.info import datastore_info

    print(datastore_info(args.datastore, obs_ids=args.obs_id))
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    from xgamma.plugin.session import format_plugin_table

    print(format_plugin_table())
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    import time

    from xgamma.simulate import survey

    start = time.perf_counter()
    path = survey(args.output, n_runs=args.runs, seed=args.seed, l_range=args.l_range, diffuse=not args.no_diffuse,
                  overwrite=args.overwrite)
    print(f"{args.runs} runs written to {path} in {time.perf_counter() - start:.1f} s")
    return 0


COMMANDS = {"run": _cmd_run, "demo": _cmd_demo, "info": _cmd_info, "plugins": _cmd_plugins,
            "simulate": _cmd_simulate}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xgamma`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from xgamma import __version__

        print(f"xgamma {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    quiet = getattr(args, "quiet", False)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="xgamma: %(message)s")
    from xgamma.exceptions import XgammaError

    try:
        return COMMANDS[args.command](args)
    except XgammaError as error:
        print(f"xgamma: error: {error}", file=sys.stderr)
        return 1
    except (FileExistsError, FileNotFoundError, PermissionError) as error:
        print(f"xgamma: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("xgamma: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
