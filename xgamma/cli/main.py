"""The ``xgamma`` command line. Heavy modules are imported inside the commands."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser"]

#: Set to 1 to see the traceback of an unexpected error (a bug) instead of its one-line summary.
DEBUG_ENV_VAR = "XGAMMA_DEBUG"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xgamma",
        description="Gamma-ray sky-map analysis of IACT DL3 data with xarray and dask.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def scheduler_options(p: argparse.ArgumentParser) -> None:
        group = p.add_mutually_exclusive_group()
        group.add_argument("--workers", type=_positive_int, metavar="N",
                           help="run on a local dask.distributed cluster of N single-threaded workers")
        group.add_argument("--scheduler", metavar="ADDRESS",
                           help="run on an existing dask.distributed scheduler (e.g. tcp://host:8786)")
        group = p.add_mutually_exclusive_group()
        group.add_argument("--quiet", "-q", action="store_true", help="no progress bars or log messages")
        group.add_argument("--verbose", "-v", action="store_true",
                           help="also the log messages of dask.distributed (scheduler, workers)")

    run = sub.add_parser("run", help="run the analysis stages of a YAML configuration")
    run.add_argument("config", type=Path, help="YAML configuration file")
    run.add_argument("--output", "-o", type=Path, required=True, help="output folder")
    run.add_argument("--overwrite", action="store_true",
                     help="zarr / fits-tiles output: replace earlier products or an unfinished run of another "
                          "configuration (an unfinished run of the same configuration is resumed)")
    run.add_argument("--dry-run", action="store_true",
                     help="check the configuration, data files, models and regions; compute and write nothing")
    scheduler_options(run)

    demo = sub.add_parser("demo", help="simulate a small data store and run the whole reference workflow")
    demo.add_argument("--data", type=Path, help="use this DL3 data store instead of simulating one")
    demo.add_argument("--output", "-o", type=Path, default=Path("xgamma-demo"),
                      help="output folder (default: ./xgamma-demo)")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the simulation (default: 0)")
    scheduler_options(demo)

    info = sub.add_parser("info", help="observation table and IRF summary of a DL3 data store")
    info.add_argument("datastore", type=Path, help="folder with hdu-index and obs-index files")
    info.add_argument("--obs-id", type=int, action="append",
                      help="show this observation only, with its IRFs (repeatable)")
    info.add_argument("--all", action="store_true", help="list every observation (default: the first 60 rows)")

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
        _check_reachable(address)
        with Client(address) as client, _quiet_interrupt():
            logging.getLogger("xgamma").info("dask scheduler %s", client.scheduler.address)
            yield
        return
    # Worker processes log only critical problems unless --verbose: errors of tasks come back to
    # this process as exceptions, and an interrupted run must not print every worker's shutdown
    # complaints.
    silence = logging.INFO if args.verbose else logging.CRITICAL
    with local_cluster(workers, silence_logs=silence) as cluster, Client(cluster), _quiet_interrupt():
        yield


@contextlib.contextmanager
def _quiet_interrupt() -> Iterator[None]:
    """On Ctrl-C, silence distributed, tornado and asyncio before the client and cluster close.

    Closing them in the middle of a computation logs cancelled futures and closed streams (with
    tracebacks): the user asked for the interruption, so only ``xgamma: interrupted`` is shown.
    """
    try:
        yield
    except KeyboardInterrupt:
        for name in ("distributed", "tornado", "asyncio"):
            logging.getLogger(name).setLevel(logging.CRITICAL + 1)
        raise


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Refuse a scheduler address that is malformed or where nothing listens, before dask tries.

    (A failing `distributed.Client` leaves a half-made client whose clean-up prints tracebacks.)
    """
    import socket

    from distributed.comm.addressing import parse_address, parse_host_port

    from xgamma.exceptions import ConfigError

    try:
        scheme, location = parse_address(address)
        if scheme in ("tcp", "tls"):
            host, port = parse_host_port(location)
            socket.create_connection((host, port), timeout=timeout).close()
    except (OSError, ValueError, TypeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error) or "timed out"
        raise ConfigError(f"--scheduler {address}: no dask scheduler reachable there ({reason})") from None


def _cmd_run(args: argparse.Namespace) -> int:
    from xgamma.cli.report import format_plan, format_report
    from xgamma.workflow import load_config, run_analysis

    config = load_config(args.config)
    if args.dry_run:
        print(format_plan(run_analysis(config, dry_run=True), args.output))
        return 0
    with _scheduler(args):
        analysis = run_analysis(config, output=args.output, progress=not args.quiet, overwrite=args.overwrite)
    if not args.quiet:
        print(format_report(analysis))
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

    print(datastore_info(args.datastore, obs_ids=args.obs_id, all_rows=args.all))
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
    _configure_logging(quiet=getattr(args, "quiet", False))
    from xgamma.exceptions import XgammaError

    try:
        with _warnings_as_lines(), _signals():
            return COMMANDS[args.command](args)
    except XgammaError as error:
        return _fail(_naming_plugin(error, str(error)))
    except MemoryError:
        return _fail("out of memory: make the map smaller (binsz, width, energy bins), select fewer runs, or "
                     "lower dask config 'xgamma.max_memory' so that xgamma refuses such maps up front")
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as error:  # the output folder: a file in the way, no space, a file-size limit...
        where = f": {error.filename}" if error.filename else ""
        return _fail(f"{error.strerror or error}{where}")
    except _Terminated:
        print("xgamma: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("xgamma: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug (in xgamma or a plugin): one line, or the traceback on request
        if os.environ.get(DEBUG_ENV_VAR):
            raise
        message = f"{type(error).__name__}: {error}"
        named = _naming_plugin(error, message)
        if named != message:  # a plugin's code raised: its authors are to be told, not xgamma's
            return _fail(f"{named} (set {DEBUG_ENV_VAR}=1 to see the traceback)")
        return _fail(f"internal error {message} (a bug; set {DEBUG_ENV_VAR}=1 to see the traceback and "
                     "please report it)", code=2)


def _naming_plugin(error: BaseException, message: str) -> str:
    """``message`` prefixed with the plugin (and distribution) whose code raised ``error``, if any."""
    from xgamma.plugin.blame import blamed_plugin

    plugin = blamed_plugin(error)
    if plugin is None or plugin.describe() in message:
        return message
    return f"{plugin.describe()} failed: {message}"


class _StderrHandler(logging.StreamHandler):
    """Writes to the current ``sys.stderr`` (which tests and callers may redirect)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


class _LineFormatter(logging.Formatter):
    """``xgamma: message`` for progress, ``xgamma: warning: message`` for warnings (one line each)."""

    def format(self, record: logging.LogRecord) -> str:
        message = " ".join(record.getMessage().split())
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        return f"xgamma: {level}{message}"


def _configure_logging(*, quiet: bool) -> None:
    """``xgamma: ...`` lines for xgamma's own log messages only (dask's stay in their loggers)."""
    logger = logging.getLogger("xgamma")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_LineFormatter())
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False


def _fail(error: Any, code: int = 1) -> int:
    """Print an error as one line (multi-line messages are joined)."""
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    print(f"xgamma: error: {message}", file=sys.stderr)
    return code


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Show xgamma's warnings (odd inputs, plugin problems) as ``xgamma: warning: ...`` lines."""
    from xgamma.exceptions import XgammaWarning
    from xgamma.plugin.types import PluginWarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, (XgammaWarning, PluginWarning)):
            text = " ".join(str(message).split())
            print(f"xgamma: warning: {text}", file=sys.stderr)
        else:
            previous(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        previous = warnings.showwarning
        warnings.simplefilter("default", XgammaWarning)
        warnings.showwarning = show
        yield


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the run cleans up (staging folder, temporary files)."""


@contextlib.contextmanager
def _signals() -> Iterator[None]:
    """SIGTERM cleans up like Ctrl-C; exceeding a file-size limit is an error, not a kill (SIGXFSZ)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise _Terminated()

    previous = {}
    for name, handler in (("SIGTERM", terminate), ("SIGXFSZ", signal.SIG_IGN)):
        if hasattr(signal, name):
            previous[name] = signal.signal(getattr(signal, name), handler)
    try:
        yield
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
