"""The bandit's exposure log on SQL (the ``bandit_*`` tables of :mod:`genart.store.bandit_tables`).

:class:`SqlExposureLog` is what :class:`genart.bandit.tester.Tester` keeps its tests in (the stage
sees only the protocol, :class:`genart.bandit.log.ExposureLog`). Rows go in and out as the typed
values of :mod:`genart.types`; JSON columns are decoded here and nowhere else. Transactions are the
engine's (:func:`genart.store.bandit_engine.write_txn`: ``BEGIN IMMEDIATE`` on SQLite), and a unique
key a concurrent writer stored first comes out as :class:`genart.errors.StoreConflictError`.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence, cast

from sqlalchemy import BigInteger, Connection, Engine, Float, Table, bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from genart.errors import StoreConflictError
from genart.store.bandit_engine import create_tables, make_engine, read_txn, write_txn
from genart.store.bandit_tables import (
    BanditAllocationRow,
    BanditArmRow,
    BanditExposureRow,
    BanditOutcomeRow,
    BanditTestRow,
)
from genart.types import LoggedAllocation, LoggedArm, LoggedExposure, LoggedOutcome, LoggedTest

# SQLite writers are serialised (BEGIN IMMEDIATE), so sequence numbers commit in order and a replay
# re-reads nothing; PostgreSQL may commit a lower id after a higher one was read.
_LOOKBACK = {"sqlite": 0}
_LOOKBACK_DEFAULT = 1000
_CHUNK = 500  # ids per IN (...) list


def _floats(values: Sequence[float]) -> str:
    return json.dumps([float(v) for v in values])


def _features(text: str | None) -> tuple[float, ...] | None:
    """A stored features list; None where it is not a JSON list (the tester skips such a row)."""
    try:
        value = json.loads(text) if text is not None else None
    except (TypeError, ValueError):
        return None
    return tuple(value) if isinstance(value, list) else None


def _test(r: Any) -> LoggedTest:
    return LoggedTest(test_id=r.test_id, policy=r.policy, config=r.config, status=r.status,
                      created_at=float(r.created_at), stopped_at=r.stopped_at,
                      winners=json.loads(r.winners) if r.winners else {}, approved_by=r.approved_by,
                      approved_at=r.approved_at, auto_approve=bool(r.auto_approve), run_id=r.run_id,
                      origin=r.origin, arms_version=int(r.arms_version or 0))


def _arm(r: Any) -> LoggedArm:
    return LoggedArm(test_id=r.test_id, segment=r.segment, arm_id=r.arm_id, position=int(r.position),
                     variant_id=r.variant_id, image_path=r.image_path, is_control=bool(r.is_control),
                     prior_mean=float(r.prior_mean), profile_id=r.profile_id,
                     features=tuple(json.loads(r.features or "[]")), impressions=int(r.impressions or 0),
                     outcomes=int(r.outcomes or 0), reward_sum=float(r.reward_sum or 0.0),
                     prior_strength=r.prior_strength, facts=json.loads(r.facts) if r.facts else None,
                     run_id=r.run_id, proposal_id=r.proposal_id, added_at=r.added_at)


def _arm_row(a: LoggedArm) -> dict[str, Any]:
    return dict(test_id=a.test_id, segment=a.segment, arm_id=a.arm_id, position=a.position, variant_id=a.variant_id,
                image_path=a.image_path, is_control=bool(a.is_control), prior_mean=float(a.prior_mean),
                profile_id=a.profile_id, features=_floats(a.features), impressions=int(a.impressions),
                outcomes=int(a.outcomes), reward_sum=float(a.reward_sum), prior_strength=a.prior_strength,
                facts=json.dumps({str(k): float(v) for k, v in a.facts.items()}, sort_keys=True) if a.facts else None,
                run_id=a.run_id, proposal_id=a.proposal_id, added_at=a.added_at)


_E = BanditExposureRow
_O = BanditOutcomeRow


def _table(row: Any) -> Table:
    """A mapped class's table (``__table__`` is typed as any ``FromClause``; a declarative class's is a Table)."""
    return cast(Table, row.__table__)


_TESTS, _ARMS, _EXPOSURES, _OUTCOMES, _ALLOCATIONS = (_table(r) for r in (
    BanditTestRow, BanditArmRow, BanditExposureRow, BanditOutcomeRow, BanditAllocationRow))
_EXPOSURE_COLUMNS = (_E.seq, _E.exposure_id, _E.test_id, _E.segment, _E.arm_id, _E.user_id, _E.propensity, _E.probs,
                     _E.features, _E.policy, _E.sticky_of, _E.t.label("exp_t"))  # Row.t is a Row method
_OUTCOME_COLUMNS = (_O.seq.label("o_seq"), _O.exposure_id.label("o_exposure_id"), _O.test_id.label("o_test_id"),
                    _O.value.label("o_value"), _O.reward.label("o_reward"), _O.counted.label("o_counted"),
                    _O.t.label("o_t"))


def _exposure(r: Any) -> LoggedExposure:
    return LoggedExposure(exposure_id=r.exposure_id, test_id=r.test_id, segment=r.segment, arm_id=r.arm_id,
                          user_id=r.user_id, propensity=float(r.propensity),
                          probs=tuple(float(p) for p in json.loads(r.probs)), features=_features(r.features),
                          policy=r.policy, t=float(r.exp_t), sticky_of=r.sticky_of, seq=int(r.seq))


def _outcome(r: Any, prefix: str = "") -> LoggedOutcome | None:
    m = r._mapping
    if m[prefix + "exposure_id"] is None:
        return None
    return LoggedOutcome(exposure_id=m[prefix + "exposure_id"], test_id=m[prefix + "test_id"],
                         value=float(m[prefix + "value"]), reward=float(m[prefix + "reward"]),
                         counted=bool(m[prefix + "counted"]), t=float(m[prefix + "t"]), seq=int(m[prefix + "seq"]))


class SqlTxn:
    """One transaction of :class:`SqlExposureLog` (see :class:`genart.bandit.log.LogTxn`)."""

    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    # --- tests and arms
    def test(self, test_id: str) -> LoggedTest | None:
        row = self.conn.execute(select(BanditTestRow).where(BanditTestRow.test_id == test_id)).first()
        return _test(row) if row is not None else None

    def tests(self, test_ids: Sequence[str] | None = None) -> list[LoggedTest]:
        q = select(BanditTestRow).order_by(BanditTestRow.test_id)
        if test_ids is not None:
            q = q.where(BanditTestRow.test_id.in_(list(test_ids)))
        return [_test(r) for r in self.conn.execute(q)]

    def test_ids(self, limit: int | None = None) -> list[str]:
        q = select(BanditTestRow.test_id).order_by(BanditTestRow.test_id)
        if limit is not None:
            q = q.limit(limit)
        return [r[0] for r in self.conn.execute(q)]

    def arms(self, test_id: str | None, segments: Sequence[str] | None = None) -> list[LoggedArm]:
        a = BanditArmRow
        q = select(a).order_by(a.test_id, a.segment, a.position)
        if test_id is not None:
            q = q.where(a.test_id == test_id)
        if segments is not None:
            q = q.where(a.segment.in_(list(segments)))
        return [_arm(r) for r in self.conn.execute(q)]

    def insert_test(self, test: LoggedTest) -> None:
        self.conn.execute(_TESTS.insert().values(
            test_id=test.test_id, policy=test.policy, config=test.config, status=test.status,
            created_at=test.created_at, stopped_at=test.stopped_at,
            winners=json.dumps(dict(test.winners)) if test.winners else None, approved_by=test.approved_by,
            approved_at=test.approved_at, auto_approve=bool(test.auto_approve), run_id=test.run_id,
            origin=test.origin, arms_version=test.arms_version))

    def insert_arms(self, arms: Sequence[LoggedArm]) -> None:
        if arms:
            self.conn.execute(_ARMS.insert(), [_arm_row(a) for a in arms])

    def replace_arms(self, test_id: str, arms: Sequence[LoggedArm]) -> None:
        self.conn.execute(delete(BanditAllocationRow).where(BanditAllocationRow.test_id == test_id))
        self.conn.execute(delete(BanditArmRow).where(BanditArmRow.test_id == test_id))
        self.insert_arms(arms)

    def mark_running(self, test_id: str, approved_by: str, approved_at: float, *, arms_changed: bool) -> None:
        t = BanditTestRow
        self.conn.execute(update(t).where(t.test_id == test_id).values(
            status="running", approved_by=approved_by, approved_at=approved_at,
            arms_version=t.arms_version + (1 if arms_changed else 0)))

    def mark_stopped(self, test_id: str, stopped_at: float, winners: Mapping[str, str]) -> None:
        t = BanditTestRow
        self.conn.execute(update(t).where(t.test_id == test_id)
                          .values(status="stopped", stopped_at=stopped_at, winners=json.dumps(dict(winners))))

    def bump_arms_version(self, test_id: str) -> None:
        t = BanditTestRow
        self.conn.execute(update(t).where(t.test_id == test_id)
                          .values(arms_version=func.coalesce(t.arms_version, 0) + 1))

    # --- decisions
    def insert_exposures(self, exposures: Sequence[LoggedExposure]) -> None:
        if not exposures:
            return
        self.conn.execute(_EXPOSURES.insert(), [
            dict(exposure_id=x.exposure_id, test_id=x.test_id, segment=x.segment, arm_id=x.arm_id, user_id=x.user_id,
                 propensity=x.propensity, probs=_floats(x.probs), features=_floats(x.features or ()), policy=x.policy,
                 sticky_of=x.sticky_of, t=x.t) for x in exposures])

    def _bump(self, test_id: str, counts: Mapping[tuple[str, str], int],
              rewards: Mapping[tuple[str, str], float] | None) -> None:
        if not counts:
            return
        t = _ARMS
        where = (t.c.test_id == bindparam("b_test")) & (t.c.segment == bindparam("b_seg")) & (t.c.arm_id == bindparam("b_arm"))
        # one compiled statement, executed for every arm at once (building one per arm costs more than the update)
        if rewards is None:
            stmt = update(t).where(where).values(impressions=t.c.impressions + bindparam("b_n", type_=BigInteger))
            params = [dict(b_test=test_id, b_seg=seg, b_arm=arm, b_n=int(n)) for (seg, arm), n in counts.items()]
        else:
            stmt = update(t).where(where).values(outcomes=t.c.outcomes + bindparam("b_n", type_=BigInteger),
                                                 reward_sum=t.c.reward_sum + bindparam("b_r", type_=Float))
            params = [dict(b_test=test_id, b_seg=seg, b_arm=arm, b_n=int(n), b_r=float(rewards[(seg, arm)]))
                      for (seg, arm), n in counts.items()]
        self.conn.execute(stmt, params)

    def add_impressions(self, test_id: str, counts: Mapping[tuple[str, str], int]) -> None:
        self._bump(test_id, counts, None)

    def user_exposures(self, test_id: str, user_ids: Sequence[str]) -> list[LoggedExposure]:
        if not user_ids:
            return []
        q = select(*_EXPOSURE_COLUMNS).where(_E.test_id == test_id, _E.user_id.in_(list(user_ids))).order_by(_E.seq)
        return [_exposure(r) for r in self.conn.execute(q)]

    def allocations(self, test_id: str, segments: Sequence[str] | None = None, *,
                    for_update: bool = False) -> dict[str, LoggedAllocation]:
        a = BanditAllocationRow
        q = select(a.segment, a.probs, a.t.label("served_at"), a.served).where(a.test_id == test_id)
        if segments is not None:
            q = q.where(a.segment.in_(list(segments)))
        if for_update and self.dialect != "sqlite":
            q = q.with_for_update()  # SQLite serialises writers already
        return {r.segment: LoggedAllocation(test_id=test_id, segment=r.segment,
                                            probs=tuple(float(p) for p in json.loads(r.probs)), t=float(r.served_at),
                                            served=int(r.served or 0)) for r in self.conn.execute(q)}

    def save_allocation(self, allocation: LoggedAllocation, *, new: bool) -> None:
        a = BanditAllocationRow
        values = dict(probs=_floats(allocation.probs), t=allocation.t, served=int(allocation.served))
        if new:
            self.conn.execute(_ALLOCATIONS.insert().values(test_id=allocation.test_id, segment=allocation.segment,
                                                          **values))
        else:
            self.conn.execute(update(a).where(a.test_id == allocation.test_id, a.segment == allocation.segment)
                              .values(**values))

    # --- feedback
    def exposures_by_id(self, exposure_ids: Sequence[str]) -> dict[str, LoggedExposure]:
        ids = list(exposure_ids)
        out: dict[str, LoggedExposure] = {}
        for start in range(0, len(ids), _CHUNK):
            for r in self.conn.execute(select(*_EXPOSURE_COLUMNS).where(_E.exposure_id.in_(ids[start:start + _CHUNK]))):
                out[r.exposure_id] = _exposure(r)
        return out

    def outcomes_by_id(self, exposure_ids: Sequence[str]) -> dict[str, LoggedOutcome]:
        ids = list(exposure_ids)
        out: dict[str, LoggedOutcome] = {}
        for start in range(0, len(ids), _CHUNK):
            for r in self.conn.execute(select(*_OUTCOME_COLUMNS).where(_O.exposure_id.in_(ids[start:start + _CHUNK]))):
                found = _outcome(r, "o_")
                if found is not None:
                    out[found.exposure_id] = found
        return out

    def insert_outcomes(self, outcomes: Sequence[LoggedOutcome]) -> None:
        if outcomes:
            self.conn.execute(_OUTCOMES.insert(), [
                dict(exposure_id=x.exposure_id, test_id=x.test_id, value=x.value, reward=x.reward, counted=x.counted,
                     t=x.t) for x in outcomes])

    def add_outcomes(self, test_id: str, counts: Mapping[tuple[str, str], int],
                     rewards: Mapping[tuple[str, str], float]) -> None:
        self._bump(test_id, counts, rewards)

    # --- replay and evaluation
    def exposures_after(self, test_id: str, seq: int, *, fresh_only: bool) -> list[LoggedExposure]:
        q = select(*_EXPOSURE_COLUMNS).where(_E.test_id == test_id, _E.seq > seq)
        if fresh_only:
            q = q.where(_E.sticky_of.is_(None))
        return [_exposure(r) for r in self.conn.execute(q.order_by(_E.seq))]

    def outcomes_after(self, test_id: str, seq: int) -> list[tuple[LoggedOutcome, LoggedExposure]]:
        q = (select(*_EXPOSURE_COLUMNS, *_OUTCOME_COLUMNS).join(_E, _E.exposure_id == _O.exposure_id)
             .where(_O.test_id == test_id, _O.seq > seq, _O.counted.is_(True), _E.sticky_of.is_(None))
             .order_by(_O.seq))
        out = []
        for r in self.conn.execute(q):
            o = _outcome(r, "o_")
            if o is not None:
                out.append((o, _exposure(r)))
        return out

    def events(self, test_id: str) -> list[tuple[LoggedExposure, LoggedOutcome | None]]:
        q = (select(*_EXPOSURE_COLUMNS, *_OUTCOME_COLUMNS).outerjoin(_O, _O.exposure_id == _E.exposure_id)
             .where(_E.test_id == test_id).order_by(_E.seq))
        return [(_exposure(r), _outcome(r, "o_")) for r in self.conn.execute(q)]

    def counts(self, test_id: str) -> tuple[int, int]:
        n_e = self.conn.execute(select(func.count()).select_from(_E).where(_E.test_id == test_id)).scalar_one()
        n_o = self.conn.execute(select(func.count()).select_from(_O).where(_O.test_id == test_id)).scalar_one()
        return int(n_e), int(n_o)


class SqlExposureLog:
    """The exposure log on a SQL database (a SQLite file or URL, PostgreSQL by URL, or an engine).

    Thread-safe: each transaction takes its own pooled connection. An engine passed in is used as it is
    (its bandit tables are created): make it with :func:`genart.store.bandit_engine.make_engine` to get
    the SQLite settings (WAL, busy timeout, ``BEGIN IMMEDIATE`` writes) concurrent requests need.

    Raises:
        StoreError: the URL is malformed or the database cannot be opened.
    """

    def __init__(self, url: str | Path | Engine | None = None) -> None:
        if isinstance(url, Engine):
            self.engine = url
            create_tables(url)
        else:
            self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def folder(self) -> Path | None:
        """The folder of a SQLite database file (None for memory or a server database)."""
        if self.dialect != "sqlite":
            return None
        db = self.engine.url.database
        if not db or db == ":memory:" or "mode=memory" in str(self.engine.url):
            return None
        return Path(db).resolve().parent

    @property
    def lookback(self) -> int:
        return _LOOKBACK.get(self.dialect, _LOOKBACK_DEFAULT)

    @contextmanager
    def read(self) -> Iterator[SqlTxn]:
        with read_txn(self.engine) as conn:
            yield SqlTxn(conn, self.dialect)

    @contextmanager
    def write(self) -> Iterator[SqlTxn]:
        try:
            with write_txn(self.engine) as conn:
                yield SqlTxn(conn, self.dialect)
        except IntegrityError as exc:  # a concurrent writer (PostgreSQL) stored the same key first
            raise StoreConflictError(f"a concurrent write to the bandit store stored it first: {exc.orig}",
                                     hint="try again") from exc
