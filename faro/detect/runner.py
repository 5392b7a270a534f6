"""One detection run (gather a snapshot, detect, record, alert) and the loop that
repeats it inside the API process every ``FARO_DETECT_INTERVAL`` seconds."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from faro.detect import ledger
from faro.detect.alerts import WebhookNotifier
from faro.detect.config import DetectConfig
from faro.detect.detectors import DAY_MS, Finding, Snapshot, detect, psi
from faro.detect.ledger import Transition
from faro.store.queries import StoreQueries

log = logging.getLogger("faro.detect")

_HISTORY_DAYS = 7


@dataclass(frozen=True)
class RunReport:
    at: int
    findings: list[Finding]
    transitions: list[Transition]
    seconds: float

    @property
    def opened(self) -> list[Transition]:
        return [t for t in self.transitions if t.status == "OPEN"]

    @property
    def resolved(self) -> list[Transition]:
        return [t for t in self.transitions if t.status == "RESOLVED"]


class Detector:
    """Runs every detector over the store in ``data_dir``; thread-safe per call."""

    def __init__(
        self,
        data_dir: Path | str,
        config: DetectConfig | None = None,
        notifier: WebhookNotifier | None = None,
        queries: StoreQueries | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.config = config or DetectConfig()
        self.notifier = notifier
        self.queries = queries or StoreQueries(self.data_dir)

    def run(self, at: int | None = None) -> RunReport:
        """Judges the window that ends at ``at`` (epoch ms, default now)."""
        start = time.perf_counter()
        at = int(time.time() * 1000) if at is None else at
        findings = detect(self.snapshot(at), self.config)
        transitions = ledger.record(self.data_dir, findings, at, self.config.window_ms)
        if self.notifier is not None:
            self.notifier.notify(transitions)
        report = RunReport(at, findings, transitions, time.perf_counter() - start)
        for t in transitions:
            log.info("%s %s [%s] %s", t.status.lower(), t.violation.type,
                     t.violation.severity, t.violation.message)  # fmt: skip
        return report

    def snapshot(self, at: int) -> Snapshot:
        w = self.config.window_ms
        snap = Snapshot(at=at, window_ms=w)
        day = snap.day_windows
        recent = range(0, self.config.widest_rolling() + 1)
        keep = sorted({*recent, *(d * day for d in range(1, _HISTORY_DAYS + 1))})
        for row in self.queries.operator_windows(at, w, keep):
            snap.operators.setdefault((row["pipeline_id"], row["operator_id"]), {})[row["k"]] = row
        # a day of window fires: the grid each window operator's gaps are found on
        for row in self.queries.window_fires(None, at - w - DAY_MS, at):
            snap.windows.setdefault((row["pipeline_id"], row["operator_id"]), []).append(row)
        for row in self.queries.last_flushes(at, at - _HISTORY_DAYS * DAY_MS):
            op, last = (row["pipeline_id"], row["operator_id"]), row["last_flush"]
            snap.last_flush[op] = max(last, snap.last_flush.get(op, last))
            if last >= at - DAY_MS:  # a subtask quiet for a day is taken as scaled away
                snap.subtask_flush.setdefault(op, {})[row["subtask_index"]] = last
        by_source: dict[tuple[str, str, str], dict[int, dict]] = {}
        for row in self.queries.feature_windows(at, w, day + 1):
            key = (row["pipeline_id"], row["feature"], row["source"])
            by_source.setdefault(key, {})[row["k"]] = row
        for (pipeline, feature, source), rows in by_source.items():
            # AGGREGATE statistics see every record; ENTITY values only a sample.
            if source == "ENTITY" and (pipeline, feature, "AGGREGATE") in by_source:
                continue
            snap.features[(pipeline, feature)] = rows
            snap.feature_source[(pipeline, feature)] = source
        self._entity_checks(snap, {(p, f) for p, f, s in by_source if s == "ENTITY"})
        return snap

    def _entity_checks(self, snap: Snapshot, with_values: set[tuple[str, str]]) -> None:
        at, w = snap.at, snap.window_ms
        for pipeline, feature in sorted(with_values):
            t = self.config.thresholds(pipeline, feature=feature)
            if t.asserts:
                snap.assertions[(pipeline, feature)] = self.queries.entity_assertions(
                    pipeline, feature, at - w, at,
                    -float("inf") if t.min is None else t.min,
                    float("inf") if t.max is None else t.max,
                )  # fmt: skip
            bins = self.queries.value_bins(
                pipeline, feature, (at - w - DAY_MS, at - w), (at - w, at)
            )
            base, current = [0] * 10, [0] * 10
            for row in bins:
                (base if row["side"] == "base" else current)[row["bin"]] += row["count"]
            if sum(base) >= t.psi_min_count and sum(current) >= t.psi_min_count:
                snap.psi[(pipeline, feature)] = psi(base, current)


class DetectionLoop:
    """Runs ``detector`` every ``interval_s`` seconds on a daemon thread until
    :meth:`stop`; a failing run is logged and the next one still happens."""

    def __init__(self, detector: Detector, interval_s: float) -> None:
        self.detector = detector
        self.interval_s = interval_s
        self.last: RunReport | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faro-detect", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self.detector.notifier is not None:
            self.detector.notifier.close()

    def _run(self) -> None:
        while True:
            try:
                self.last = self.detector.run()
            except Exception:
                log.exception("detection run failed; retrying in %.0f s", self.interval_s)
            if self._stop.wait(self.interval_s):
                return
