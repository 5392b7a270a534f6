"""The ``faro`` command: the store side of faro (materializer, Delta import,
maintenance, the API), ``faro tail``, which shows what arrives on the capture topic, and
``faro skew`` and ``faro compare``, which ask the API, and ``faro status``, which
says what the store holds.

Every subcommand explains itself with ``--help``; data directories default to
``FARO_LOCAL_PATH``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from faro import __version__
from faro.core.events import EventType
from faro.core.settings import settings
from faro.core.windows import format_time, parse_time
from faro.store import defaults


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        result: int = args.run(args)
    except (ValueError, RuntimeError, ImportError) as exc:
        print(f"faro {args.command}: {exc}", file=sys.stderr)
        return 2
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faro",
        description="faro's store side: materialize CaptureEvents from Kafka (or import a "
        "Delta table of them) into Parquet, maintain the store, and serve the query API over "
        "it; say what the store holds (status); tail the capture topic to see what pipelines "
        "send; and, through the API, check "
        "a model's served values (skew) and compare two versions of a pipeline (compare).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    m = _command(
        sub,
        "materialize",
        _materialize,
        "consume Avro CaptureEvents from Kafka into the Parquet store, exactly once",
        "Runs until SIGINT/SIGTERM, then stores the batch in progress and exits. "
        "Restarting resumes after the last stored offset; undecodable messages go to "
        "DATA_DIR/dead_letters with their bytes, offset and reason.",
    )
    m.add_argument("--bootstrap-servers", required=True, help="Kafka bootstrap.servers")
    m.add_argument("--topic", default=settings().kafka_topic, help="default: %(default)s")
    m.add_argument("--group", default=defaults.GROUP, help="default: %(default)s")
    m.add_argument(
        "--batch-size",
        type=int,
        default=defaults.BATCH_SIZE,
        help="events per file batch (%(default)s); memory follows it, ~2 MB per 1,000 events",
    )
    m.add_argument(
        "--max-batch-seconds",
        type=float,
        default=defaults.MAX_BATCH_SECONDS,
        help="store a partial batch after this long (%(default)s)",
    )
    m.add_argument(
        "--progress-seconds",
        type=float,
        default=defaults.PROGRESS_INTERVAL_S,
        help="log events/s, stored, dead letters, peak memory and lag this often (%(default)s)",
    )
    _consumer_config_option(m)

    i = _command(
        sub,
        "import-delta",
        _import_delta,
        "import the Delta table a DeltaCaptureEventSink writes into the Parquet store, "
        "exactly once",
        "For pipelines that capture to Delta instead of Kafka (Spark without Kafka): "
        "imports each commit made since the last import, so the API, the UI and "
        "detection see those events. Safe to stop at any point and to run again; "
        "--follow keeps importing new commits.",
    )
    i.add_argument("table", help="the Delta table's path or URI (DeltaCaptureEventSink's path)")
    i.add_argument(
        "--follow",
        action="store_true",
        help="keep importing new commits until SIGINT/SIGTERM; default: import once and exit",
    )
    i.add_argument(
        "--interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="with --follow, look for new commits this often (%(default)s)",
    )
    i.add_argument(
        "--batch-events",
        type=_positive_int,
        default=100_000,
        help="gather commits up to this many events per store write (%(default)s)",
    )
    i.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="deltalake storage option for tables on object stores, e.g. "
        "AWS_REGION=eu-west-1 (repeatable)",
    )

    c = _command(
        sub,
        "compact",
        _compact,
        "merge small Parquet files per partition; optionally apply retention",
        "Rows are unchanged; each partition with two or more files becomes one sorted file.",
    )
    c.add_argument(
        "--retention-days",
        type=int,
        help="first delete whole date partitions older than this many days",
    )

    st = _command(
        sub,
        "status",
        _status,
        "what the store holds and how far it has got",
        "Per event type and pipeline: events, files, size, dates and the newest processing "
        "time stored; dead letters and their commonest reasons; the last Kafka offset (or "
        "Delta version) stored per source; partitions that `faro compact` would merge. "
        "Reads file footers, not events, so it is quick on any store. With "
        "--bootstrap-servers, also how many messages on the broker the store does not "
        "have yet (it joins no consumer group and commits nothing).",
    )
    st.add_argument("--bootstrap-servers", help="Kafka bootstrap.servers: also show the lag")
    st.add_argument(
        "--topic",
        help="with --bootstrap-servers, the topic to measure; default: each topic the store "
        f"holds offsets of, else {settings().kafka_topic}",
    )
    st.add_argument("--json", action="store_true", help="print JSON instead of text")
    _consumer_config_option(st)

    e = _command(
        sub,
        "erase",
        _erase,
        "remove every ENTITY row of one entity",
        "Per-entity erasure (e.g. a deletion request): rewrites only the files that hold "
        "the entity and prints how many rows were removed.",
    )
    e.add_argument("--entity-id", required=True)

    d = _command(
        sub,
        "detect",
        _detect,
        "run the violation detectors once and record what opened and resolved",
        "Judges the window that ends at --at (default now) against its baselines, stores "
        "violations in DATA_DIR/violations and prints the open ones. The API runs the same "
        "detection every FARO_DETECT_INTERVAL seconds; thresholds: docs/violations.md.",
    )
    d.add_argument(
        "--at",
        help="end of the judged window: ISO-8601 time (UTC if no offset) or epoch ms; default now",
    )
    d.add_argument(
        "--config",
        type=Path,
        default=settings().detect_config,
        help="threshold file (FARO_DETECT_CONFIG; default ./faro.toml if present)",
    )
    d.add_argument(
        "--webhook",
        default=settings().alert_webhook,
        help="POST opened/resolved violations here (FARO_ALERT_WEBHOOK)",
    )

    s = _command(
        sub,
        "serve",
        _serve,
        "serve the query API (faro-api) over the store",
        "Answers /pipelines, /features, /traces, /entities and /ingest; OpenAPI at /docs. "
        "Settings come from FARO_* variables (docs/configuration.md).",
    )
    s.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    s.add_argument("--port", type=int, default=9000, help="default: %(default)s")

    k = _command(
        sub,
        "skew",
        _skew,
        "check a model's log of served feature values against what the pipeline held",
        "Reads LOG (Parquet, CSV or JSON lines; a row per prediction: the entity, when "
        "the model read its features, and a column per feature of the values it was served) "
        "in chunks of 10,000 rows, checks each feature's with the API's POST "
        "/features/{feature}/skew, and prints how many rows matched, how many did not, "
        "how many of those were served a value the pipeline had already replaced "
        "(outdated), and how many have no captured value: entities sampling leaves out, and "
        "sampled ones the pipeline had not computed (missing). Progress "
        "goes to stderr. Exits 1 when the mismatch rate exceeds --max-mismatch-rate.",
        data_dir=False,
    )
    k.add_argument("log", type=Path, metavar="LOG", help="the serving or prediction log")
    k.add_argument(
        "--feature",
        required=True,
        action="append",
        help="a feature whose served values the log holds, in the column of its name "
        "(repeatable: one log row per prediction, a column per feature)",
    )
    k.add_argument("--pipeline", required=True, help="the pipeline that computes it")
    k.add_argument(
        "--operator",
        help="compare with this operator's values (default: per row, the one that processed "
        "the entity's value last)",
    )
    k.add_argument(
        "--api",
        default="http://127.0.0.1:9000",
        help="the URL of `faro serve` (default: %(default)s)",
    )
    k.add_argument("--entity-column", default="entity_id", help="default: %(default)s")
    k.add_argument(
        "--time-column",
        default="at",
        help="when the model read the value: timestamps (UTC when without zone), epoch ms "
        "or ISO-8601 strings (default: %(default)s)",
    )
    k.add_argument(
        "--value-column", help="with one --feature: the column of its values, if not its name"
    )
    k.add_argument("--lookback", default="7d", help="default: %(default)s")
    k.add_argument("--abs-tol", type=float, default=1e-9, help="default: %(default)s")
    k.add_argument("--rel-tol", type=float, default=1e-9, help="default: %(default)s")
    k.add_argument(
        "--mismatches",
        type=Path,
        metavar="PATH",
        help="write every mismatched row here as JSON lines (index: its row in LOG)",
    )
    k.add_argument(
        "--missing",
        type=Path,
        metavar="PATH",
        help="write the rows of sampled entities with no captured value here as JSON lines",
    )
    k.add_argument(
        "--max-mismatch-rate",
        type=float,
        metavar="RATE",
        help="exit 1 when mismatched / compared exceeds this for any feature (for scheduled "
        "checks)",
    )

    c = _command(
        sub,
        "compare",
        _compare,
        "compare one feature as two versions of a pipeline computed it, as a gate",
        "Asks the API's GET /features/{feature}/compare to pair the records both versions "
        "captured (by entity and event time) and prints how many match, how many differ, "
        "how many only one side has, and the hours where they went wrong. With "
        "--max-mismatch-rate or --max-one-sided-rate it is a gate for switching a model to "
        "a version in shadow: it exits 1 when a rate exceeds its threshold, or when no "
        "record was compared at all.",
        data_dir=False,
    )
    c.add_argument("--feature", required=True, help="the feature both versions compute")
    c.add_argument("--pipeline", required=True, help="the version in production")
    c.add_argument(
        "--against", help="the version in shadow (default: --pipeline, with another operator)"
    )
    c.add_argument("--operator", help="--pipeline's operator (default: the only one with values)")
    c.add_argument(
        "--against-operator", help="--against's operator (default: the only one with values)"
    )
    c.add_argument(
        "--window",
        default="1h",
        help="records with event times (with --windows: windows ending) in this window "
        "(default: 1h)",
    )
    c.add_argument(
        "--windows",
        action="store_true",
        help="compare window by window what two window operators reported (records in and "
        "out, the feature's count, nulls, sum, min, max), not record by record: no entity "
        "data needed, so PERSONAL, SENSITIVE and aggregate-only features too",
    )
    c.add_argument(
        "--until",
        help="where the window ends: ISO-8601 or epoch ms (default: now; a little in the past "
        "lets a version that runs behind catch up)",
    )
    c.add_argument("--abs-tol", type=float, default=1e-9, help="default: %(default)s")
    c.add_argument("--rel-tol", type=float, default=1e-9, help="default: %(default)s")
    c.add_argument(
        "--api",
        default="http://127.0.0.1:9000",
        help="the URL of `faro serve` (default: %(default)s)",
    )
    c.add_argument(
        "--max-mismatch-rate",
        type=float,
        metavar="RATE",
        help="exit 1 when mismatched / compared exceeds this",
    )
    c.add_argument(
        "--max-one-sided-rate",
        type=float,
        metavar="RATE",
        help="exit 1 when records only one side captured (pending and out-of-sample ones "
        "aside) exceed this share of all records",
    )
    c.add_argument(
        "--records",
        type=Path,
        metavar="PATH",
        help="write the first --limit mismatched and one-sided records here as JSON lines",
    )
    c.add_argument(
        "--limit", type=int, default=1000, help="records listed with --records (default: 1000)"
    )

    t = _command(
        sub,
        "tail",
        _tail,
        "print the CaptureEvents arriving on the Kafka topic as JSON lines",
        "Decodes each message with faro's schema; undecodable ones are named on stderr "
        "(partition, offset, why) and skipped. Joins no consumer group and commits "
        "nothing, so the materializer's offsets never move. Runs until Ctrl-C, "
        "--max-events or --idle-exit.",
        data_dir=False,
    )
    t.add_argument("--bootstrap-servers", required=True, help="Kafka bootstrap.servers")
    t.add_argument("--topic", default=settings().kafka_topic, help="default: %(default)s")
    t.add_argument(
        "--from-beginning",
        action="store_true",
        help="start at each partition's oldest message; default: only what arrives from now on",
    )
    t.add_argument("--pipeline", help="only events of this pipeline id")
    t.add_argument("--operator", help="only events of this operator id")
    t.add_argument("--type", choices=[e.value for e in EventType], help="only this event type")
    t.add_argument("--entity", help="only ENTITY events of this entity id")
    t.add_argument("--max-events", type=_positive_int, help="stop after printing this many")
    t.add_argument(
        "--idle-exit",
        type=float,
        metavar="SECONDS",
        help="stop once no message has arrived for this long (for scripts)",
    )
    _consumer_config_option(t)
    return parser


def _consumer_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--consumer-config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra librdkafka setting, e.g. security.protocol=SASL_SSL (repeatable)",
    )


def _key_values(items: list[str], option: str = "--consumer-config") -> dict[str, str]:
    extra = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{option} takes KEY=VALUE, got {item!r}")
        extra[key] = value
    return extra


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


def _command(
    sub: argparse._SubParsersAction,
    name: str,
    run: Callable[[argparse.Namespace], int],
    summary: str,
    description: str,
    data_dir: bool = True,
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=f"{summary}. {description}"
    )
    if data_dir:
        p.add_argument(
            "--data-dir",
            type=_data_dir,
            default=Path(settings().local_path),
            help="the store's directory (FARO_LOCAL_PATH, default %(default)s)",
        )
    p.set_defaults(run=run)
    return p


def _data_dir(value: str) -> Path:
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(
            f"{value} is a file; the store is a directory (an existing one, or a new path)"
        )
    return path


def _materialize(args: argparse.Namespace) -> int:
    from faro.store.materializer import Materializer, keep_pandas_out

    keep_pandas_out()

    extra = _key_values(args.consumer_config)
    materializer = Materializer(
        args.bootstrap_servers,
        args.data_dir,
        topic=args.topic,
        group=args.group,
        batch_size=args.batch_size,
        max_batch_seconds=args.max_batch_seconds,
        progress_interval_s=args.progress_seconds,
        consumer_config=extra,
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: materializer.stop())
    materializer.run()
    return 0


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _import_delta(args: argparse.Namespace) -> int:
    import threading

    from faro.store.delta_import import DeltaImport, describe

    importer = DeltaImport(
        args.table,
        args.data_dir,
        storage_options=_key_values(args.storage_option, "--storage-option"),
        batch_events=args.batch_events,
    )
    if not args.follow:
        print(describe(args.table, importer.run_once()))
        return 0
    stop = threading.Event()
    for sig in _STOP_SIGNALS:
        signal.signal(sig, lambda *_: stop.set())
    logging.getLogger("faro.store.delta").info("following %s; Ctrl-C stops", args.table)
    importer.follow(args.interval, stop)
    return 0


def _tail(args: argparse.Namespace) -> int:
    from faro.tail import EventFilter, Tail

    tail = Tail(
        args.bootstrap_servers,
        args.topic,
        from_beginning=args.from_beginning,
        consumer_config=_key_values(args.consumer_config),
    )
    previous = {sig: signal.signal(sig, lambda *_: tail.stop()) for sig in _STOP_SIGNALS}
    start = "the beginning" if args.from_beginning else "now on"
    print(
        f"faro tail: {tail.topic} on {args.bootstrap_servers}, {len(tail.start_offsets)} "
        f"partitions, from {start}; Ctrl-C stops",
        file=sys.stderr,
    )
    wanted = EventFilter(
        pipeline_id=args.pipeline,
        operator_id=args.operator,
        event_type=None if args.type is None else EventType(args.type),
        entity_id=args.entity,
    )
    try:
        stats = tail.run(
            sys.stdout,
            sys.stderr,
            event_filter=wanted,
            max_events=args.max_events,
            idle_exit_s=args.idle_exit,
        )
    except BrokenPipeError:  # the reader went away (`faro tail | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stats.read and not stats.shown:
        print(tail.no_match_hint(), file=sys.stderr)
    print(
        f"faro tail: {stats.shown:,} events printed of {stats.read:,} read, "
        f"{stats.undecodable:,} undecodable",
        file=sys.stderr,
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from faro.api import create_app

    uvicorn.run(create_app(args.data_dir), host=args.host, port=args.port, log_level="info")
    return 0


def _detect(args: argparse.Namespace) -> int:
    from faro.detect import Detector, Severity, ledger, load
    from faro.detect.alerts import WebhookNotifier

    try:
        at = None if args.at is None else parse_time(args.at)
    except ValueError as exc:
        raise ValueError(f"--at: {exc}") from None
    notifier = WebhookNotifier(args.webhook) if args.webhook else None
    detector = Detector(args.data_dir, load(args.config), notifier)
    report = detector.run(at)
    if notifier is not None:
        notifier.close()
    still_open = [v for v in ledger.read(args.data_dir) if v.is_open]
    print(
        f"detection at {format_time(report.at)} ({report.seconds:.2f} s): "
        f"{len(report.opened)} opened, {len(report.resolved)} resolved, {len(still_open)} open"
    )
    for v in sorted(still_open, key=lambda v: (-Severity(v.severity).rank, v.opened_at)):
        print(f"  {v.severity:<8} {v.type:<20} since {format_time(v.opened_at)}  {v.message}")
    return 0


def _skew(args: argparse.Namespace) -> int:
    from faro.serving_log import Columns, run

    if not args.log.is_file():
        raise ValueError(f"no such file: {args.log}")
    if args.value_column and len(args.feature) > 1:
        raise ValueError(
            "--value-column names the column of one feature; with several --feature, each "
            "feature's values are read from the column of its name"
        )
    options = {
        "pipeline_id": args.pipeline, "operator_id": args.operator, "lookback": args.lookback,
        "abs_tol": args.abs_tol, "rel_tol": args.rel_tol,
    }  # fmt: skip
    values = {f: args.value_column or f for f in dict.fromkeys(args.feature)}
    with contextlib.ExitStack() as files:
        mismatches, missing = (
            None if path is None else files.enter_context(path.open("w"))
            for path in (args.mismatches, args.missing)
        )
        columns = Columns(args.entity_column, args.time_column, values)
        totals = run(args.log, args.api, options, columns, mismatches, missing)
    failed = []
    for feature, total in totals.items():
        print(f"{feature} of {args.pipeline}, served against captured:")
        print(total.summary() + "\n")
        rate, most = total.mismatch_rate, args.max_mismatch_rate
        if most is not None and rate is not None and rate > most:
            failed.append(f"{feature}: mismatch rate {rate:.2%} exceeds {most:.2%}")
    for what, path in (("mismatched rows", args.mismatches), ("missing rows", args.missing)):
        if path is not None:
            print(f"{what}: {path}")
    for line in failed:
        print(line, file=sys.stderr)
    return 1 if failed else 0


def _compare(args: argparse.Namespace) -> int:
    from faro import shadow

    query = {
        "pipeline_id": args.pipeline, "against": args.against, "operator_id": args.operator,
        "against_operator_id": args.against_operator, "window": args.window,
        "until": args.until, "abs_tol": args.abs_tol, "rel_tol": args.rel_tol,
        "limit": args.limit if args.records else shadow.WINDOWS_LISTED,
    }  # fmt: skip
    answer = shadow.compare(args.api, args.feature, query, args.windows)
    print(shadow.summary(answer))
    if args.records:
        with args.records.open("w") as out:
            print(f"{shadow.write_records(answer, out)} records: {args.records}")
    failed = shadow.failures(answer, args.max_mismatch_rate, args.max_one_sided_rate)
    for line in failed:
        print(line, file=sys.stderr)
    return 1 if failed else 0


def _compact(args: argparse.Namespace) -> int:
    from faro.store.maintenance import compact, expire

    if args.retention_days is not None:
        removed = expire(args.data_dir, args.retention_days)
        print(f"retention: removed {len(removed)} partitions older than {args.retention_days} days")
    report = compact(args.data_dir)
    print(
        f"compacted {report.partitions} partitions: {report.files_before} files -> "
        f"{report.files_after}"
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    import json
    import time
    from dataclasses import asdict

    from faro.store.status import DELTA_PREFIX, describe, kafka_lag, store_status

    status = store_status(args.data_dir)
    lags = None
    if args.bootstrap_servers:
        kafka = [t for t in status.progress if not t.startswith(DELTA_PREFIX)]
        topics = [args.topic] if args.topic else kafka or [settings().kafka_topic]
        lags = kafka_lag(
            args.bootstrap_servers, topics, status.progress, _key_values(args.consumer_config)
        )
    if args.json:
        body = status.to_dict()
        if lags is not None:
            body["kafka_lag"] = [asdict(lag) for lag in lags]
        print(json.dumps(body, indent=2))
    else:
        print(describe(status, lags, now_ms=int(time.time() * 1000)))
    return 0


def _erase(args: argparse.Namespace) -> int:
    from faro.store.maintenance import erase_entity

    removed = erase_entity(args.data_dir, args.entity_id)
    print(f"removed {removed} ENTITY rows of entity {args.entity_id!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
