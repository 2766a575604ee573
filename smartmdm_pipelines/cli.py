"""The `smartmdm` command: demo, ui, generate, inspect, ingest, db."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

from smartmdm_pipelines import (
    cli_audit,
    cli_billing,
    cli_nrw,
    cli_ops,
    cli_portal,
    cli_protection,
    cli_realtime,
    cli_retention,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir or os.environ.get("SMARTMDM_DATA_DIR") or "data").resolve()


def cmd_demo(args: argparse.Namespace) -> int:
    from smartmdm_pipelines.demo import DemoOptions, format_summary, run_demo

    options = DemoOptions(
        data_dir=_data_dir(args), meters=args.meters, days=args.days, start=args.start, seed=args.seed
    )
    result = run_demo(options)
    print(format_summary(result))
    print("\nOpen the Dagster UI on this data with: make ui   (then http://127.0.0.1:3000)")
    return 0 if not result.runs_failed or args.allow_failures else 1


def cmd_ui(args: argparse.Namespace) -> int:
    from smartmdm_pipelines.demo import prepare_environment

    prepare_environment(_data_dir(args))
    dagster = Path(sys.executable).with_name("dagster")
    argv = [
        str(dagster),
        "dev",
        "-w",
        str(REPO_ROOT / "workspace.yaml"),
        "-h",
        args.host,
        "-p",
        str(args.port),
    ]
    os.chdir(REPO_ROOT)
    # `dagster dev` still does the job in 1.13; its "use dg dev" notice is noise for our users
    os.environ["PYTHONWARNINGS"] = "ignore:Function `dev_command` is superseded:FutureWarning"
    os.execv(argv[0], argv)


def cmd_generate(args: argparse.Namespace) -> int:
    from smartmdm_pipelines.simulate import SimulationSpec, generate

    spec = SimulationSpec(
        meters=args.meters,
        start=args.start,
        days=args.days,
        seed=args.seed,
        timezone=args.timezone,
        faults=not args.no_faults,
        truth_values=args.truth_values,
        output_format="generic_csv" if args.formats == "mix" else args.formats,
        formats="mix" if args.formats == "mix" else None,
        inflow_zones=args.inflow_zones,
    )
    summary = generate(Path(args.out), spec)
    print(json.dumps(summary.to_dict(), indent=2, default=str))
    return 0


def _config(args: argparse.Namespace):
    from smartmdm_pipelines.config import load_config

    return load_config(args.config, _data_dir(args))


def cmd_inspect(args: argparse.Namespace) -> int:
    """One JSON summary per delivery (a compressed file: one per member); exit 1 if one is rejected."""
    from smartmdm_pipelines.services.ingestion import inspect_path

    summaries = inspect_path(Path(args.file), _config(args))
    for summary in summaries:
        print(json.dumps(summary.to_dict(), indent=2))
    return 1 if any(s.status == "rejected" for s in summaries) else 0


def cmd_ingest(args: argparse.Namespace) -> int:
    """Load each file (every member of a compressed one); a file that cannot be opened is one line
    on stderr and the others still load. Exit 2 if a file could not be opened, else 1 if a delivery
    was rejected."""
    from smartmdm_pipelines.services.ingestion import DeliveryError, ingest_path
    from smartmdm_pipelines.store.busy import open_store

    cfg = _config(args)
    store = open_store(
        os.environ.get("SMARTMDM_DATABASE_URL") or f"duckdb:///{_data_dir(args) / 'smartmdm.duckdb'}"
    )
    worst = 0
    try:
        for name in args.files:
            try:
                summaries = ingest_path(store, Path(name), cfg, archive=args.archive)
            except DeliveryError as exc:
                print(f"error: {exc}", file=sys.stderr)
                worst = 2
                continue
            for summary in summaries:
                print(json.dumps(summary.to_dict(), indent=2))
                if summary.status == "rejected":
                    worst = max(worst, 1)
    finally:
        store.dispose()
    return worst


def cmd_migrate(args: argparse.Namespace) -> int:
    """Register a legacy folder's files and backfill them through Dagster in chunks (resumable)."""
    import time

    from smartmdm_pipelines.demo import prepare_environment
    from smartmdm_pipelines.services.ingestion import DeliveryError

    folder = Path(args.folder)
    if not folder.exists():
        raise DeliveryError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise DeliveryError(
            f"{folder} is a file; migrate expects a folder of legacy files (load one file with smartmdm ingest)"
        )
    prepare_environment(_data_dir(args))
    os.environ["SMARTMDM_MIGRATION_DIR"] = str(folder.resolve())
    import dagster as dg

    from smartmdm_pipelines.lib.instance import QUIET_RUN_CONFIG
    from smartmdm_pipelines.lib.launch import run_job
    from smartmdm_pipelines.lib.partitions import LEGACY_FILES

    started, reads, failed = time.perf_counter(), 0, 0
    with dg.DagsterInstance.get() as instance:  # runs against code location smartmdm (job pages list them)
        run_job(instance, "register_legacy_files_job", run_config=QUIET_RUN_CONFIG)
        keys = instance.get_dynamic_partitions(LEGACY_FILES.name)
        for first in range(0, len(keys), args.chunk):
            chunk = keys[first : first + args.chunk]
            run = run_job(
                instance,
                "legacy_migration_job",
                partition_range=(chunk[0], chunk[-1]),
                run_config=QUIET_RUN_CONFIG,
            )
            meta = {}
            if run.success:
                meta = {
                    k: v.value
                    for k, v in run.asset_materializations_for_node("legacy_raw_reads")[0].metadata.items()
                }
                reads += int(meta.get("reads", 0))
                failed += int(meta.get("rejected", 0))
                for failure in meta.get("rejected_files", []):
                    print(f"rejected: {failure}", file=sys.stderr)
            else:
                failed += len(chunk)
                print(f"error: {_run_failure(run)}", file=sys.stderr)
            elapsed = time.perf_counter() - started
            print(
                f"{min(first + args.chunk, len(keys))}/{len(keys)} files  {reads:,} reads  "
                f"{reads / elapsed:,.0f} reads/s  chunk: loaded {meta.get('loaded', 0)}, "
                f"skipped {meta.get('skipped_already_loaded', 0)}, rejected {meta.get('rejected', 0)}"
                + ("" if run.success else "  (run failed)"),
                flush=True,
            )
    return 1 if failed else 0


def _run_failure(run) -> str:
    """The first failure of an in-process Dagster run, as one line."""
    for event in run.all_events:
        if event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE") and event.event_specific_data:
            error = getattr(event.event_specific_data, "error", None)
            if error is not None:
                return _one_line(error.message)
    return "the migration run failed (see the Dagster UI for its logs)"


def _one_line(text: str, limit: int = 400) -> str:
    """An error message as one line of at most ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def cmd_exceptions(args: argparse.Namespace) -> int:
    """The VEE exception queue: list, show, accept, edit, estimate, dismiss."""
    from smartmdm_pipelines.services import exceptions as queue
    from smartmdm_pipelines.store.busy import open_store

    store = open_store()
    try:
        if args.action == "list":
            rows = queue.list_exceptions(
                store,
                status=None if args.status == "all" else args.status,
                rule=args.rule,
                meter=args.meter,
                day=args.day,
                limit=args.limit,
            )
            if args.json:
                print(rows.to_json(orient="records", date_format="iso"))
            else:
                print(rows.to_string(index=False) if len(rows) else "no exceptions match")
            return 0
        if args.action == "show":
            exc = queue.get_exception(store, args.exception_id)
            versions = queue.exception_intervals(store, exc)
            print(json.dumps({k: (str(v) if v is not None else None) for k, v in exc.items()}, indent=2))
            print(versions.to_string(index=False))
            return 0
        outcome = queue.resolve(
            store,
            _config(args),
            queue.Resolution(
                exception_id=args.exception_id,
                action=args.action,
                by=args.by,
                reason=args.reason,
                value=getattr(args, "value", None),
                method=getattr(args, "method", None),
            ),
        )
        print(json.dumps(outcome))
        return 0
    except queue.ExceptionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        store.dispose()


def cmd_backtest(args: argparse.Namespace) -> int:
    """Hide known-good intervals, estimate them (chain and California baseline), report the accuracy."""
    from smartmdm_pipelines.domain.vee.backtest import BacktestOptions
    from smartmdm_pipelines.services.vee_backtest import BacktestError, run_backtest
    from smartmdm_pipelines.store.busy import open_store

    cfg = _config(args)
    url = os.environ.get("SMARTMDM_DATABASE_URL") or f"duckdb:///{_data_dir(args) / 'smartmdm.duckdb'}"
    store = open_store(url)
    options = BacktestOptions(
        seed=args.seed,
        max_series=args.max_series or None,
        gaps_per_series=args.gaps_per_series,
        days_from=args.days_from,
        days_to=args.days_to,
    )
    try:
        result = run_backtest(store, cfg, options)
    except BacktestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        store.dispose()
    if args.json:
        print(json.dumps(result.report))
    else:
        print(result.table())
        print(
            "\nn gaps per gap length (at most one per series-day, up to "
            f"{args.gaps_per_series} per series); NMAE = sum|est - true| / sum|true|, bias = "
            "(sum est - sum true) / sum|true| over the masked intervals; chain/baseline: NMAE ratio, "
            "95 % interval by bootstrap over series (over gaps below 10 series); "
            f"seed {args.seed}, {result.seconds:.1f} s"
        )
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from smartmdm_pipelines.store import migrate
    from smartmdm_pipelines.store.engine import create_store_engine, database_url

    engine = create_store_engine(database_url())
    if args.action == "upgrade":
        migrate.upgrade(engine, args.revision or "head")
    elif args.action == "downgrade":
        migrate.downgrade(engine, args.revision or "base")
    print(
        json.dumps(
            {
                "url": engine.url.render_as_string(hide_password=True),
                "current": migrate.current_revision(engine),
                "head": migrate.head_revision(),
            }
        )
    )
    engine.dispose()
    return 0


def _whole(minimum: int):
    """An argparse type: a whole number ≥ ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smartmdm", description="Smart MDM — meter data management on Dagster"
    )
    parser.add_argument("--data-dir", help="data directory (default $SMARTMDM_DATA_DIR or ./data)")
    parser.add_argument("--config", help="utility config YAML (default $SMARTMDM_CONFIG or the bundled one)")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the Python traceback of an unexpected error (or set SMARTMDM_DEBUG=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    date = dt.date.fromisoformat

    p = sub.add_parser(
        "demo", help="generate a synthetic utility, ingest it through Dagster, print a summary"
    )
    p.add_argument(
        "--meters", type=_whole(50), default=1000, help="number of meters (at least 50: one of every segment)"
    )
    p.add_argument("--days", type=_whole(1), default=7)
    p.add_argument("--start", type=date, default=dt.date(2024, 3, 8))
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--allow-failures", action="store_true", help="exit 0 even if some file runs failed")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("ui", help="the Dagster UI (dagster dev) on the demo's data")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser("generate", help="write a synthetic utility (CIS drop, head-end files, ground truth)")
    p.add_argument("out", help="output folder")
    p.add_argument(
        "--meters", type=_whole(50), default=1000, help="number of meters (at least 50: one of every segment)"
    )
    p.add_argument("--days", type=_whole(1), default=7)
    p.add_argument("--start", type=date, default=dt.date(2024, 3, 8))
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--timezone", default="America/Chicago")
    p.add_argument("--no-faults", action="store_true")
    p.add_argument("--truth-values", action="store_true", help="also write the clean interval values")
    p.add_argument(
        "--formats",
        choices=["generic_csv", "cmep", "green_button", "nem12", "beacon_csv", "mix"],
        default="generic_csv",
        help="head-end file format; mix = each head-end in another format (what a format cannot carry "
        "goes to generic CSV files of the same head-end)",
    )
    p.add_argument(
        "--inflow-zones",
        type=int,
        default=0,
        metavar="N",
        help="also write N DMAs metered only at their inlet (5-15 min, m3) with injected leaks "
        "(ground_truth/inflow_events.csv); leaks start after 35 days",
    )
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser(
        "inspect",
        help="JSON summary of what a head-end file holds (each member of a .zip/.gz), without loading it",
    )
    p.add_argument("file")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("ingest", help="load head-end files through the same code path as the sensor")
    p.add_argument("files", nargs="+")
    p.add_argument(
        "--no-archive", dest="archive", action="store_false", help="leave the files where they are"
    )
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("migrate", help="backfill a folder of legacy head-end files in chunks (resumable)")
    p.add_argument("folder")
    p.add_argument("--chunk", type=int, default=50, help="files per Dagster run")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser(
        "exceptions", help="the VEE exception queue: list, show, accept, edit, estimate, dismiss"
    )
    ex = p.add_subparsers(dest="action", required=True)
    q = ex.add_parser("list", help="list exceptions (default: open ones)")
    q.add_argument("--status", default="open", help="open | accepted | edited | dismissed | resolved | all")
    q.add_argument("--rule")
    q.add_argument("--meter")
    q.add_argument("--day", type=date)
    q.add_argument("--limit", type=int, default=100)
    q.add_argument("--json", action="store_true")
    q = ex.add_parser("show", help="an exception and every version of the intervals it covers")
    q.add_argument("exception_id")
    for name, extra in (("accept", None), ("edit", "value"), ("estimate", "method"), ("dismiss", None)):
        q = ex.add_parser(name, help=f"{name} an open exception (recorded with your name and reason)")
        q.add_argument("exception_id")
        q.add_argument("--by", required=True, help="who resolves it")
        q.add_argument("--reason", required=True, help="why")
        if extra == "value":
            q.add_argument(
                "--value", type=float, required=True, help="the value for every interval of the exception"
            )
        if extra == "method":
            q.add_argument(
                "--method",
                required=True,
                help="linear | like_day | class_profile | average_daily_load | zero_fill",
            )
    p.set_defaults(func=cmd_exceptions)

    p = sub.add_parser(
        "backtest-estimation", help="mask known-good intervals, estimate them, report accuracy per gap length"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--days-from", type=date, help="first operating day that may hold a gap")
    p.add_argument("--days-to", type=date, help="last operating day that may hold a gap")
    p.add_argument(
        "--max-series", type=_whole(0), default=200, help="series that get gaps (0: every eligible one)"
    )
    p.add_argument(
        "--gaps-per-series",
        type=_whole(1),
        default=50,
        help="non-overlapping gaps per gap length per series (fewer where the series has fewer eligible days)",
    )
    p.set_defaults(func=cmd_backtest)

    cli_billing.register(sub)
    cli_ops.register(sub)
    cli_protection.register(sub)
    cli_nrw.register(sub)
    cli_realtime.register(sub)
    cli_portal.register(sub)
    cli_audit.register(sub)
    cli_retention.register(sub)

    p = sub.add_parser("db", help="schema migrations of the store ($SMARTMDM_DATABASE_URL)")
    p.add_argument("action", choices=["upgrade", "downgrade", "current"])
    p.add_argument("revision", nargs="?")
    p.set_defaults(func=cmd_db)
    return parser


EXIT_USAGE = 2  # a path, an argument or the configuration is wrong (argparse uses 2 as well)
EXIT_INTERNAL = 3  # an unexpected error (a bug): one line, the traceback with --debug
EXIT_UNAVAILABLE = 4  # the database went away (down, restarted): nothing half-written, run it again


_CONNECTION_LOST = (
    "could not connect",
    "connection refused",
    "server closed the connection",
    "terminating connection",
    "the database system is",  # starting up, shutting down, in recovery mode
    "connection timed out",
    "connection already closed",
)


def _database_went_away(exc: BaseException) -> bool:
    """A PostgreSQL server that is down, restarting or dropped our connection — not a bad query,
    a refused password or a missing database (those are not cured by running again)."""
    import sqlalchemy as sa

    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    text = str(getattr(exc, "orig", exc)).lower()
    return exc.connection_invalidated or (
        isinstance(exc, sa.exc.OperationalError) and any(t in text for t in _CONNECTION_LOST)
    )


def main(argv: list[str] | None = None) -> int:
    """Run a command. Exit codes: 0 done; 1 a file or delivery was rejected (or runs failed);
    2 a usage, file or configuration error; 3 an unexpected error; 4 the database was unreachable or
    went away mid-command (the interrupted transaction rolled back: run the command again). Errors
    are one line on stderr."""
    from smartmdm_pipelines.config import ConfigError
    from smartmdm_pipelines.lib.secrets import SecretsFileError, load_secrets
    from smartmdm_pipelines.services.meter_ids import MeterMapError

    args = build_parser().parse_args(argv)
    debug = args.debug or bool(os.environ.get("SMARTMDM_DEBUG"))
    try:
        load_secrets()  # $SMARTMDM_SECRETS_FILE and NAME_FILE files, 0600 only
    except SecretsFileError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `smartmdm inspect FILE | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ConfigError, MeterMapError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        if debug:
            raise
        text = f"{exc.filename}: {exc.strerror or exc}" if exc.filename else str(exc)
        print(f"error: {_one_line(text)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        if _database_went_away(exc):
            print(
                f"error: the database is unavailable ({_one_line(getattr(exc, 'orig', exc), 200)}); the interrupted "
                "transaction was rolled back, nothing of it is stored: run the command again",
                file=sys.stderr,
            )
            return EXIT_UNAVAILABLE
        print(
            f"error: unexpected {type(exc).__name__}: {_one_line(exc, 300)} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
