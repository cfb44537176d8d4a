"""The simulator: schema conformance, determinism and the truths it plants."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

from banking_analytics.cli import app
from banking_analytics.events import Kind, schema_for, stored_arrow_schema
from banking_analytics.events._error_codes import CODE_CATEGORIES
from banking_analytics.simulate import GroundTruth, SimulationConfig, run_simulation
from banking_analytics.vocabulary import EventType

END = datetime(2026, 3, 2, 15, tzinfo=UTC)
UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
ANALYSIS = (
    "spending_analysis",
    "budget_tracking",
    "goal_setting",
    "bill_reminders",
    "tax_optimization",
)


@dataclass
class Run:
    config: SimulationConfig
    truth: GroundTruth
    chunks: dict[EventType, list[pa.Table]] = field(default_factory=dict)
    progress: int = 0

    def table(self, event_type: EventType) -> pa.Table:
        return pa.concat_tables(self.chunks[event_type])

    def frame(self, event_type: EventType) -> pd.DataFrame:
        frame: pd.DataFrame = self.table(event_type).to_pandas()
        return frame


def simulate(
    users: int, days: int, seed: int, chunk_events: int = 1_000_000, activity: float = 1.0
) -> Run:
    config = SimulationConfig(
        users=users, days=days, seed=seed, chunk_events=chunk_events, end=END, activity=activity
    )
    chunks: dict[EventType, list[pa.Table]] = {t: [] for t in EventType}
    progressed = [0]

    def sink(event_type: EventType, table: pa.Table) -> None:
        chunks[event_type].append(table)

    def progress(n: int) -> None:
        progressed[0] += n

    truth = run_simulation(config, sink, progress)
    return Run(config, truth, chunks, progressed[0])


@pytest.fixture(scope="module")
def run() -> Run:
    """A small world, cut into small chunks so the big streams write several."""
    return simulate(users=3000, days=30, seed=7, chunk_events=50_000)


@pytest.fixture(scope="module")
def active() -> Run:
    """The world of ``run`` with three times the visits."""
    return simulate(users=3000, days=30, seed=7, chunk_events=50_000, activity=3.0)


@pytest.fixture(scope="module")
def busy() -> Run:
    """Many sign-ups over a short window: enough link attempts inside each outage."""
    return simulate(users=6000, days=8, seed=11)


# -- the shape of what is emitted ------------------------------------------------------


def _field_errors(event_type: EventType, table: pa.Table) -> Iterator[str]:
    """Independent check of every value against its field spec."""
    schema = schema_for(event_type)
    for spec in schema.stored_fields:
        if spec.name == "ingest_flags":
            continue
        col = table[spec.name]
        if spec.required and col.null_count:
            yield f"{spec.name}: {col.null_count} nulls"
        values = col.drop_null()
        if not len(values):
            continue
        if spec.choices and not pc.all(pc.is_in(values, pa.array(spec.choices))).as_py():
            yield f"{spec.name}: {set(values.to_pylist()) - set(spec.choices)} not allowed"
        if spec.kind is Kind.FLOAT and not pc.all(pc.is_finite(values)).as_py():
            yield f"{spec.name}: not finite"
        if spec.ge is not None and pc.min(values).as_py() < spec.ge:
            yield f"{spec.name}: below {spec.ge}"
        if spec.le is not None and pc.max(values).as_py() > spec.le:
            yield f"{spec.name}: above {spec.le}"
        limit = spec.max_length if spec.kind is not Kind.JSON else None
        if limit is not None and pc.max(pc.utf8_length(values)).as_py() > limit:
            yield f"{spec.name}: longer than {limit}"
        pattern = spec.pattern
        if pattern is not None and not pc.all(pc.match_substring_regex(values, pattern)).as_py():
            yield f"{spec.name}: does not match {pattern}"
        if spec.kind is Kind.UUID and not pc.all(pc.match_substring_regex(values, UUID)).as_py():
            yield f"{spec.name}: not a canonical UUID"
        if spec.kind is Kind.JSON:
            for text in set(values.to_pylist()):
                if len(text.encode()) > (spec.max_length or 0) or not isinstance(
                    json.loads(text), dict
                ):
                    yield f"{spec.name}: {text!r} is not a small JSON object"
        if spec.not_before is not None:
            earlier = pc.less(table[spec.name], table[spec.not_before])
            if pc.any(pc.fill_null(earlier, False)).as_py():
                yield f"{spec.name}: before {spec.not_before}"


def test_every_chunk_has_the_stored_schema_and_obeys_the_field_specs(run: Run) -> None:
    for event_type, chunks in run.chunks.items():
        expected = stored_arrow_schema(schema_for(event_type))
        expected = pa.schema([f for f in expected if f.name != "ingest_flags"])
        assert chunks, event_type
        for chunk in chunks:
            assert chunk.schema.names == expected.names
            assert chunk.schema.types == expected.types
            assert list(_field_errors(event_type, chunk)) == [], event_type


def test_envelope_values(run: Run) -> None:
    for event_type in EventType:
        table = run.table(event_type)
        delay = pc.subtract(
            pc.cast(table["received_at"], pa.int64()), pc.cast(table["occurred_at"], pa.int64())
        )
        assert pc.min(delay).as_py() >= 50_000
        assert pc.max(delay).as_py() <= 3_000_000
        assert table["sent_at"].null_count == table.num_rows
        assert pc.all(pc.equal(table["schema_version"], 1)).as_py()
        if event_type is EventType.PERFORMANCE_METRIC:
            # Per-attempt reports belong to a user's session; aggregates to nobody.
            assert pc.all(pc.equal(table["user_id"].is_null(), table["session_id"].is_null()))
            continue
        assert table["user_id"].null_count == 0
        interactive = event_type in (EventType.BEHAVIOR, EventType.CONNECTION_ATTEMPT)
        assert table["session_id"].null_count == (0 if interactive else table.num_rows)


def test_chunks_are_bounded_and_in_time_order_within_the_window(run: Run) -> None:
    """Every event falls inside the window but the history of the subscriptions already
    paid for when it starts."""
    start_us = int(run.config.start.timestamp() * 1e6)
    end_us = int(END.timestamp() * 1e6)
    for event_type, chunks in run.chunks.items():
        assert all(c.num_rows <= run.config.chunk_events for c in chunks)
        times = pc.cast(run.table(event_type)["occurred_at"], pa.int64()).to_numpy()
        assert (np.diff(times) >= 0).all(), event_type
        assert times[0] >= start_us or event_type is EventType.SUBSCRIPTION
        assert times[-1] < end_us
    subscriptions = run.frame(EventType.SUBSCRIPTION)
    before = subscriptions[subscriptions.occurred_at < run.config.start]
    assert set(before.kind) == {"subscribed", "payment_succeeded"}
    assert sum(len(c) for c in run.chunks[EventType.SYNC_RUN]) > 1


def test_event_ids_are_unique_canonical_uuids(run: Run) -> None:
    ids = pa.chunked_array([c["event_id"] for chunks in run.chunks.values() for c in chunks])
    assert pc.all(pc.match_substring_regex(ids, UUID)).as_py()
    assert pc.count_distinct(ids).as_py() == len(ids)


def test_counts_and_progress_match_the_emitted_rows(run: Run) -> None:
    emitted = {t.value: run.table(t).num_rows for t in EventType}
    assert run.truth.event_counts == emitted
    assert run.progress == sum(emitted.values())


def test_latency_is_the_time_from_credentials_to_the_outcome(run: Run) -> None:
    attempts = run.frame(EventType.CONNECTION_ATTEMPT)
    timed = attempts.dropna(subset=["credentials_submitted_at", "ended_at"])
    derived = (timed.ended_at - timed.credentials_submitted_at).dt.total_seconds() * 1000
    assert np.allclose(timed.latency_ms, derived, atol=1e-3)
    assert attempts.latency_ms.isna().sum() == len(attempts) - len(timed)


def test_error_categories_agree_with_the_known_codes(run: Run) -> None:
    for event_type in (EventType.CONNECTION_ATTEMPT, EventType.SYNC_RUN):
        frame = run.frame(event_type)
        known = frame[frame.error_code.isin(list(CODE_CATEGORIES))]
        assert len(known)
        expected = known.error_code.map({k: v.value for k, v in CODE_CATEGORIES.items()})
        assert (known.error_category == expected).all()
        failed = frame[frame.outcome == "failure"]
        assert failed.error_category.notna().all()
        assert frame[frame.outcome == "success"].error_code.isna().all()


def test_realistic_proportions(run: Run) -> None:
    attempts = run.frame(EventType.CONNECTION_ATTEMPT)
    sessions = attempts[attempts.flow == "new"].groupby("link_session_id").outcome
    abandoned = sessions.apply(lambda o: (o == "abandoned").any()).mean()
    assert 0.08 < abandoned < 0.22
    assert sessions.size().max() == 2
    assert 2000 < attempts.latency_ms.median() < 8000
    syncs = run.frame(EventType.SYNC_RUN)
    assert 0.9 < (syncs.outcome == "success").mean() < 0.99
    behaviour = run.frame(EventType.BEHAVIOR)
    assert behaviour.session_id.notna().all()
    assert 2 < behaviour.groupby("session_id").size().mean() < 5
    assert (behaviour.success == True).mean() > 0.95  # noqa: E712
    per_user_devices = behaviour.groupby("user_id").device.nunique()
    assert (per_user_devices > 1).mean() > 0.05


# -- determinism -----------------------------------------------------------------------


def test_same_config_same_world_whatever_the_chunking() -> None:
    first = simulate(users=300, days=7, seed=3)
    again = simulate(users=300, days=7, seed=3, chunk_events=997)
    assert all(first.table(t).equals(again.table(t)) for t in EventType)
    assert first.truth.churned_users == again.truth.churned_users
    assert first.truth.institutions == again.truth.institutions


def test_different_seed_different_world() -> None:
    first = simulate(users=300, days=7, seed=3)
    other = simulate(users=300, days=7, seed=4)
    for t in EventType:
        assert not first.table(t)["event_id"].equals(other.table(t)["event_id"])
    assert not first.table(EventType.SYNC_RUN)["occurred_at"].equals(
        other.table(EventType.SYNC_RUN)["occurred_at"]
    )


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="timezone"):
        SimulationConfig(end=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="users"):
        SimulationConfig(users=0, end=END)
    with pytest.raises(ValueError, match="chunk_events"):
        SimulationConfig(chunk_events=0, end=END)
    for activity in (0.0, -1.0, 20.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="activity must be above 0 and at most 20"):
            SimulationConfig(activity=activity, end=END)
    assert SimulationConfig(activity=20, end=END).activity == 20
    eastern = timezone(timedelta(hours=-5))
    shifted = SimulationConfig(end=datetime(2026, 1, 1, 7, tzinfo=eastern))
    assert shifted.end == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert shifted.end.tzinfo is UTC
    assert shifted.start == datetime(2025, 10, 3, 12, tzinfo=UTC)


# -- planted behaviour -----------------------------------------------------------------


def _user_number(user_ids: pd.Series) -> pd.Series:
    return user_ids.str.removeprefix("usr_").astype(int)


def test_new_users_start_by_linking_and_use_features_only_after(run: Run) -> None:
    present = run.truth.users_present_at_start
    attempts = run.frame(EventType.CONNECTION_ATTEMPT)
    behaviour = run.frame(EventType.BEHAVIOR)
    syncs = run.frame(EventType.SYNC_RUN)
    new_links = attempts[attempts.flow == "new"]
    linked = new_links[new_links.outcome == "success"].groupby("user_id").ended_at.min()
    assert len(linked) > 500

    newcomers = behaviour[_user_number(behaviour.user_id) > present]
    first = newcomers.sort_values("occurred_at", kind="stable").groupby("user_id").first()
    assert (first.feature == "account_linking").all()
    assert (first.action == "open_link").all()
    first_attempt = new_links.groupby("user_id").started_at.min()
    assert (first_attempt.reindex(first.index) == first.occurred_at).all()
    assert not attempts[_user_number(attempts.user_id) <= present].flow.eq("new").any()

    used = newcomers[newcomers.action != "open_link"]
    since = used.user_id.map(linked)
    assert since.notna().all(), "feature use without any successful link"
    assert (used.occurred_at >= since).all()

    new_syncs = syncs[_user_number(syncs.user_id) > present]
    assert (new_syncs.started_at >= new_syncs.user_id.map(linked)).all()
    first_txn = (
        syncs[(syncs.feature == "transaction_sync") & (syncs.outcome == "success")]
        .groupby("user_id")
        .ended_at.min()
    )
    analysis = used[used.feature.isin(ANALYSIS)]
    assert len(analysis) > 100
    assert (analysis.occurred_at > analysis.user_id.map(first_txn)).all()


def _health_rate(frame: pd.DataFrame) -> tuple[float, int]:
    """Plaid-style success rate: successes / (successes + institution and aggregator failures)."""
    counted = frame[
        (frame.outcome == "success")
        | (
            (frame.outcome == "failure")
            & frame.error_category.isin(["institution", "aggregator", "network_timeout"])
        )
    ]
    return float((counted.outcome == "success").mean()), len(counted)


def test_planted_outages_depress_success_only_inside_their_windows(busy: Run) -> None:
    outages = busy.truth.outages
    assert 3 <= len(outages) <= 5
    assert {o.severity for o in outages} == {"down", "degraded"}
    institutions = {i.institution_id: i for i in busy.truth.institutions}
    attempts = busy.frame(EventType.CONNECTION_ATTEMPT)
    syncs = busy.frame(EventType.SYNC_RUN)

    pooled: dict[str, list[pd.DataFrame]] = {"down": [], "degraded": []}
    for outage in outages:
        truth = institutions[outage.institution_id]
        assert outage in truth.outages
        assert timedelta(hours=2) <= outage.end - outage.start <= timedelta(hours=6)
        at_bank = attempts[attempts.institution_id == outage.institution_id]
        if outage.feature != "all":
            at_bank = at_bank[at_bank.feature == outage.feature]
        inside = at_bank.credentials_submitted_at.between(
            outage.start, outage.end, inclusive="left"
        )
        pooled[outage.severity].append(at_bank[inside])
        if outage.feature == "account_linking":
            continue

        refreshes = ~syncs.trigger.isin(["initial", "historical"])
        runs = syncs[refreshes & (syncs.institution_id == outage.institution_id)]
        if outage.feature != "all":
            runs = runs[runs.feature == outage.feature]
        during = runs.started_at.between(outage.start, outage.end, inclusive="left")
        rate, n = _health_rate(runs[during])
        if n >= 40:
            assert abs(rate - outage.success_rate) < 0.15, outage
        normal, n_normal = _health_rate(runs[~during])
        assert n_normal > 200
        assert abs(normal - truth.sync_success_rate) < 0.03, outage
        if outage.severity == "degraded" and n >= 40:
            mean_during = (runs[during].ended_at - runs[during].started_at).mean()
            mean_normal = (runs[~during].ended_at - runs[~during].started_at).mean()
            assert mean_during > 1.5 * mean_normal

    down, n_down = _health_rate(pd.concat(pooled["down"]))
    degraded, n_degraded = _health_rate(pd.concat(pooled["degraded"]))
    assert n_down >= 10
    assert n_degraded >= 10
    assert down < 0.2
    assert 0.35 < degraded < 0.85

    affected = [o for o in outages if o.feature in ("all", "account_linking")]
    in_any = pd.Series(False, index=attempts.index)
    for o in affected:
        in_any |= (attempts.institution_id == o.institution_id) & (
            attempts.credentials_submitted_at.between(o.start, o.end, inclusive="left")
        )
    for institution_id in {o.institution_id for o in affected}:
        rate, n = _health_rate(attempts[(attempts.institution_id == institution_id) & ~in_any])
        assert n > 100
        assert abs(rate - institutions[institution_id].base_success_rate) < 0.05
    errors = attempts[in_any & (attempts.outcome == "failure")]
    assert "INSTITUTION_DOWN" in set(errors.error_code)


def test_churned_users_stop_and_lose_interest_first(run: Run) -> None:
    churned = pd.Series(run.truth.churned_users).map(pd.Timestamp)
    assert 0.05 < len(churned) / run.config.users < 0.5
    for event_type in (EventType.BEHAVIOR, EventType.SYNC_RUN):
        frame = run.frame(event_type)
        last = frame.groupby("user_id").occurred_at.max().dt.tz_localize(None).dt.normalize()
        gone = last.reindex(churned.index).dropna()
        assert len(gone) > 50
        assert (gone <= churned.reindex(gone.index)).all(), event_type

    subscriptions = run.frame(EventType.SUBSCRIPTION)
    after = subscriptions[subscriptions.user_id.isin(churned.index)]
    day = after.occurred_at.dt.tz_localize(None).dt.normalize()
    late = after[day > after.user_id.map(churned)]
    assert set(late.kind) <= {"refunded"}

    # Users who were around for the two weeks before their churn used the app
    # less in the last of them.
    behaviour = run.frame(EventType.BEHAVIOR)
    behaviour = behaviour[behaviour.user_id.isin(churned.index)]
    churn_day = behaviour.user_id.map(churned)
    before = (churn_day - behaviour.occurred_at.dt.tz_localize(None).dt.normalize()).dt.days
    first_seen = before.groupby(behaviour.user_id).transform("max")
    settled = behaviour[first_seen >= 14]
    assert settled.user_id.nunique() > 40
    last_week = (before[settled.index] < 7).sum()
    week_before = ((before[settled.index] >= 7) & (before[settled.index] < 14)).sum()
    assert last_week < 0.85 * week_before


def test_subscription_events_are_consistent(run: Run) -> None:
    subs = run.frame(EventType.SUBSCRIPTION)
    assert {"trial_started", "subscribed", "payment_succeeded", "canceled"} <= set(subs.kind)
    assert (subs[subs.kind == "trial_started"].status == "trialing").all()
    assert (subs[subs.kind == "payment_failed"].status == "past_due").all()
    paid = subs[subs.kind == "payment_succeeded"]
    gross = paid.unit_amount * paid.quantity
    assert (paid.amount <= gross).all()
    undiscounted = paid.discount_percent.isna() & paid.discount_amount.isna()
    assert (paid.amount[undiscounted] == gross[undiscounted]).all()
    assert (paid.amount[~undiscounted] < gross[~undiscounted]).all()
    credited = subs[subs.kind.isin(["subscribed", "upgraded"])]
    assert credited.attributed_feature.notna().mean() > 0.5
    assert set(subs.tier) <= {"plus", "premium"}
    assert (subs.currency == "USD").all()
    plans = subs.drop_duplicates("plan").set_index("plan")
    assert plans.loc["premium_monthly", "unit_amount"] == 999
    assert plans.loc["premium_monthly", "interval"] == "month"


def test_the_world_opens_with_the_subscribers_already_paying(run: Run) -> None:
    """Each user paying when the window starts subscribed once before it, after their
    sign-up, and was charged at the start and at every period since: the next charge falls
    inside the window, within a period of its start."""
    start = pd.Timestamp(run.config.start)
    subscriptions = run.frame(EventType.SUBSCRIPTION)
    before = subscriptions[subscriptions.occurred_at < start]
    opened = before[before.kind == "subscribed"]
    assert len(opened) == opened.user_id.nunique() == run.truth.users_paying_at_start > 20
    present = run.truth.users_present_at_start
    assert (_user_number(opened.user_id) <= present).all()
    # Nobody present at the start had a subscription event before it but these.
    assert set(before.subscription_id) == set(opened.subscription_id)
    assert (opened.status == "active").all()
    assert (start - opened.occurred_at).max() <= pd.Timedelta(days=720 + 1)
    period = opened.set_index("subscription_id").interval.map(
        {"month": pd.Timedelta(days=30.4375), "year": pd.Timedelta(days=365.25)}
    )
    since = opened.set_index("subscription_id").occurred_at
    charges = before[before.kind == "payment_succeeded"].groupby("subscription_id").size()
    elapsed = (start - since) / period
    assert (charges.reindex(since.index) == np.ceil(elapsed.astype(float))).all()
    inside = subscriptions[subscriptions.occurred_at >= start]
    first_inside = (
        inside[inside.kind.isin(["payment_succeeded", "payment_failed"])]
        .groupby("subscription_id")
        .occurred_at.min()
    )
    due = since + np.ceil(elapsed.astype(float)) * period
    assert (due >= start).all()
    assert (due < start + period).all()
    continuing = first_inside.reindex(since.index).dropna()
    # Some cancel (or churn) before their next charge, and yearly ones may fall after the end.
    assert len(continuing) > 0.8 * (due < pd.Timestamp(END)).sum()
    assert (continuing - due.reindex(continuing.index)).abs().max() < pd.Timedelta(seconds=1)


def test_truth_describes_the_world_and_round_trips(run: Run, tmp_path: Path) -> None:
    truth = run.truth
    assert 40 <= len(truth.institutions) <= 80
    assert all(re.fullmatch(r"ins_\d+", i.institution_id) for i in truth.institutions)
    aggregators = pd.Series([i.aggregator for i in truth.institutions])
    assert aggregators.value_counts().index[0] == "plaid"
    assert set(truth.feature_upgrade_effects) == set(
        schema_for("behavior").field("feature").choices
    )
    assert {d.name for d in truth.churn_drivers} >= {
        "repeated_connection_failures",
        "falling_engagement",
    }
    assert truth.config == run.config
    assert GroundTruth.from_json(truth.to_json()) == truth
    path = tmp_path / "truth.json"
    truth.write(path)
    assert GroundTruth.read(path) == truth
    document = json.loads(path.read_text())
    assert document["config"]["seed"] == 7
    assert datetime.fromisoformat(document["config"]["end"]) == END


def test_performance_metrics_agree_with_the_events(run: Run) -> None:
    metrics = run.frame(EventType.PERFORMANCE_METRIC)
    attempts = run.frame(EventType.CONNECTION_ATTEMPT)
    latency = metrics[metrics.metric_type == "connection_latency"]
    assert (latency.unit == "ms").all()
    assert latency.user_id.notna().all()
    assert set(latency.value.round(3)) <= set(attempts.latency_ms.round(3))
    rates = metrics[metrics.metric_type.isin(["connection_success_rate", "error_rate"])]
    assert rates.value.between(0, 1).all()
    assert rates.user_id.isna().all()
    assert len(set(metrics.metric_type)) == 8


def test_features_with_a_planted_upgrade_effect_convert_more(run: Run) -> None:
    effects = run.truth.feature_upgrade_effects
    behaviour = run.frame(EventType.BEHAVIOR)
    subscriptions = run.frame(EventType.SUBSCRIPTION)
    strong = [f for f, e in effects.items() if e >= 1.9]
    neutral_only = set(behaviour.user_id) - set(
        behaviour[behaviour.feature.map(effects) > 1.0].user_id
    )
    strong_users = set(behaviour[behaviour.feature.isin(strong)].user_id)
    converted = set(subscriptions[subscriptions.kind.isin(["trial_started", "subscribed"])].user_id)
    strong_rate = len(strong_users & converted) / len(strong_users)
    neutral_rate = len(neutral_only & converted) / len(neutral_only)
    assert strong_rate > 1.5 * neutral_rate
    credited = subscriptions[subscriptions.kind == "subscribed"].attributed_feature.dropna()
    assert credited.map(effects).min() > 1.0


# -- activity ------------------------------------------------------------------------------


def _visits(run: Run) -> int:
    """Sessions of feature use but the onboarding one after each first link: the visits
    drawn at the users' daily rates."""
    behaviour = run.table(EventType.BEHAVIOR)
    used = behaviour.filter(pc.not_equal(behaviour["action"], "open_link"))
    attempts = run.table(EventType.CONNECTION_ATTEMPT)
    linked = attempts.filter(
        pc.and_(pc.equal(attempts["flow"], "new"), pc.equal(attempts["outcome"], "success"))
    )
    sessions: int = pc.count_distinct(used["session_id"]).as_py()
    return sessions - pc.count_distinct(linked["user_id"]).as_py()


def test_activity_multiplies_the_visits_and_leaves_the_rest_nearly_alone(
    run: Run, active: Run
) -> None:
    """Three times the activity, three times the visits: within 5%, as the visits are Poisson
    draws (~16k at activity 1 here, a relative error of ~1% on the ratio) and churn moves a
    little with them. Link sessions, their open_link events and the onboarding sessions
    are not scaled, so behaviour events grow less than 3x. Links, syncs and the
    performance reports stay within 2%; subscription events may rise a little, as a
    feature's first use (sooner with more visits) lifts upgrading."""
    assert 2.85 < _visits(active) / _visits(run) < 3.15
    counts, more = run.truth.event_counts, active.truth.event_counts
    assert 2.4 < more["behavior"] / counts["behavior"] < 3.0
    for event_type in ("connection_attempt", "sync_run", "performance_metric"):
        assert abs(more[event_type] / counts[event_type] - 1) < 0.02, event_type
    assert 0.97 < more["subscription"] / counts["subscription"] < 1.15
    sessions = active.frame(EventType.BEHAVIOR).groupby("session_id").size()
    assert 2 < sessions.mean() < 5  # more visits, not longer ones


def test_the_activity_is_recorded_in_the_truth(active: Run, tmp_path: Path) -> None:
    truth = active.truth
    document = json.loads(truth.to_json())
    assert document["config"]["activity"] == 3.0
    assert GroundTruth.from_json(truth.to_json()) == truth
    # A document written before the setting existed describes an activity-1 world.
    del document["config"]["activity"]
    assert GroundTruth.from_json(json.dumps(document)).config.activity == 1.0


def test_the_simulate_command_takes_an_activity(tmp_path: Path) -> None:
    manifest = tmp_path / "truth.json"
    world = "--users 200 --days 7 --seed 3 --activity 2.5 --end 2026-03-02T15:00:00+00:00"
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            *world.split(),
            "--manifest",
            str(manifest),
            "--db",
            f"duckdb:///{tmp_path}/s.duckdb",
        ],
    )
    assert result.exit_code == 0, result.output
    written = GroundTruth.read(manifest)
    assert written.config.activity == 2.5
    expected = simulate(users=200, days=7, seed=3, activity=2.5).truth
    assert written.event_counts == expected.event_counts
    assert expected.event_counts != simulate(users=200, days=7, seed=3).truth.event_counts


@pytest.mark.parametrize("activity", ["0", "-1", "20.5", "nan"])
def test_a_bad_activity_is_one_line_and_exit_2(tmp_path: Path, activity: str) -> None:
    store = tmp_path / "s.duckdb"
    result = CliRunner().invoke(
        app,
        ["simulate", "--users", "10", "--activity", activity, "--db", f"duckdb:///{store}"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 2
    assert "activity must be above 0 and at most 20" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not store.exists()  # checked before any store is opened
