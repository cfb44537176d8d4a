"""``rules`` (apply, list, defaults, test, backtest), ``alerts`` and ``monitor``: alert rules, what
they raised, and their evaluator.

A rule file that does not check out ends with each problem on its own line
(``FILE:LINE: where: what``) on stderr and exit code 2; a rule test whose
expectations are not met with its failures and exit code 1 (as promtool does),
so scripts can tell the two apart. Text from the store is printed as is, never
read as Rich markup.
"""

from __future__ import annotations

import getpass
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from banking_analytics.cli import (
    BAD_INPUT,
    DEFAULT_DB,
    DbOption,
    JsonOption,
    _open,
    err,
    fail,
    out,
    print_json,
)

if TYPE_CHECKING:
    from banking_analytics.monitor import RuleEvaluation

__all__ = ["alerts_app", "monitor", "rules_app"]

#: A rule test ran and some expectation was not met.
TEST_FAILED = 1

rules_app = typer.Typer(
    help=(
        "Alert rules: apply a rule file, list or delete them, print the defaults, test them, "
        "replay them over past data."
    ),
    no_args_is_help=True,
)
alerts_app = typer.Typer(help="Alerts: current instances and their history.", no_args_is_help=True)
FileArgument = Annotated[Path, typer.Argument(help="A YAML file", dir_okay=False)]


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _bad_file(lines: list[str]) -> typer.Exit:
    for line in lines:
        err.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    return typer.Exit(BAD_INPUT)


@rules_app.command("apply")
def apply_rules(file: FileArgument, db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """Check a rule file (``rules:`` and ``slos:``), then save each rule and SLO as its
    next version (unchanged ones stay).

    Nothing is saved unless every rule checks out. Each change is audited.
    """
    from banking_analytics.access import AuditLog
    from banking_analytics.monitor import (
        NameTakenError,
        RuleFileError,
        RuleView,
        Slo,
        read_rule_file,
    )

    try:
        rules = read_rule_file(str(file))
    except RuleFileError as exc:
        raise _bad_file(exc.lines) from None
    with _open(db) as analytics:
        try:
            applied = analytics.monitor.apply(rules, _actor())
        except NameTakenError as exc:
            raise fail(str(exc)) from None
        audit = AuditLog(analytics.engine)
        for stored in applied:
            kind = "slo" if isinstance(stored.rule, Slo) else "alert_rule"
            audit.record(
                actor=_actor(),
                actor_role="admin",
                action=f"put_{kind}",
                outcome="ok",
                object_type=kind,
                object_id=stored.name,
                details={"version": stored.version, "change": stored.change.value},
            )
    if as_json:
        print_json([RuleView.of(stored) for stored in applied])
        return
    table = Table(title=f"{len(applied)} rules from {file}", title_justify="left")
    for heading in ("rule", "version", "change"):
        table.add_column(heading)
    for stored in applied:
        table.add_row(stored.name, str(stored.version), stored.change.value)
    out.print(table, markup=False, highlight=False)


@rules_app.command("delete")
def delete_rule(
    name: Annotated[str, typer.Argument(help="The rule's (or SLO's) name")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Delete a rule or an SLO (a last version saying so) and forget its alert instances;
    audited."""
    from banking_analytics.access import AuditLog
    from banking_analytics.monitor import RuleNotFoundError, Slo

    with _open(db) as analytics:
        try:
            kind = (
                "slo" if isinstance(analytics.monitor.store.rule(name).rule, Slo) else "alert_rule"
            )
            stored = analytics.monitor.store.delete(name, _actor())
        except RuleNotFoundError as exc:
            raise fail(str(exc)) from None
        AuditLog(analytics.engine).record(
            actor=_actor(),
            actor_role="admin",
            action=f"delete_{kind}",
            outcome="ok",
            object_type=kind,
            object_id=name,
            details={"version": stored.version},
        )
    out.print(f"deleted {name} (version {stored.version})", markup=False, highlight=False)


@rules_app.command("list")
def list_rules(db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """The current rules of a store (metric, condition, thresholds and timers), then its
    SLOs (SLI, objective, period)."""
    from banking_analytics.monitor import Rule, RuleView, Slo

    with _open(db) as analytics:
        stored = analytics.monitor.rules()
        slos = analytics.monitor.slos()
    if as_json:
        print_json([RuleView.of(s) for s in (*stored, *slos)])
        return
    table = Table(title=f"{len(stored)} alert rules", title_justify="left")
    for heading in ("rule", "version", "metric", "by", "condition", "warning", "critical", "for"):
        table.add_column(heading, overflow="fold")
    for s in stored:
        assert isinstance(s.rule, Rule)
        written = s.rule.as_dict()
        condition = written["condition"] + (
            f" ({written['compare']})" if "compare" in written else ""
        )
        table.add_row(
            s.name,
            str(s.version),
            s.rule.metric,
            ", ".join(s.rule.by) or "-",
            condition,
            *(str(written.get(k, "-")) for k in ("warning", "critical", "for")),
        )
    out.print(table, markup=False, highlight=False)
    if not slos:
        return
    objectives = Table(title=f"{len(slos)} SLOs", title_justify="left")
    for heading in ("slo", "version", "sli", "objective", "period", "by"):
        objectives.add_column(heading, overflow="fold")
    for s in slos:
        assert isinstance(s.rule, Slo)
        written = s.rule.as_dict()
        objectives.add_row(
            s.name,
            str(s.version),
            s.rule.sli,
            f"{s.rule.objective:g}",
            written["period"],
            ", ".join(s.rule.by) or "-",
        )
    out.print(objectives, markup=False, highlight=False)


@rules_app.command("defaults")
def default_rules() -> None:
    """Print the shipped rules for the bank-integration metrics (a rule file, commented)."""
    from banking_analytics.monitor import DEFAULT_RULES_YAML

    out.print(DEFAULT_RULES_YAML, end="", markup=False, highlight=False, soft_wrap=True)


@rules_app.command("test")
def test_rules(files: Annotated[list[Path], typer.Argument(help="Rule test files")]) -> None:
    """Run rule unit tests (promtool's format, with pending/recovering/nodata states)."""
    from banking_analytics.monitor import RuleFileError, run_rule_tests

    failed = False
    for file in files:
        try:
            report = run_rule_tests(str(file))
        except RuleFileError as exc:
            raise _bad_file(exc.lines) from None
        if report.ok:
            out.print(f"{file}: SUCCESS ({report.checks} checks)", markup=False, highlight=False)
            continue
        failed = True
        out.print(f"{file}: FAILED", markup=False, highlight=False)
        for failure in report.failures:
            out.print(f"  {failure}", markup=False, highlight=False)
    if failed:
        raise typer.Exit(TEST_FAILED)


Moment = Annotated[
    datetime,
    typer.Option(
        formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"],
        help="UTC unless an offset is given",
    ),
]


@rules_app.command("backtest")
def backtest_rules(
    file: FileArgument,
    since: Moment,
    until: Moment,
    step: Annotated[
        str | None, typer.Option(help="Evaluate every STEP (e.g. 15m) instead of each interval")
    ] = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Replay each rule of a rule file over [--since, --until] as the evaluator would have
    run it, and print when it would have fired. Nothing is saved."""
    from banking_analytics.monitor import (
        BacktestError,
        Rule,
        RuleFileError,
        parse_duration,
        read_rule_file,
    )

    try:
        rules = read_rule_file(str(file))
    except RuleFileError as exc:
        raise _bad_file(exc.lines) from None
    replayed = [rule for rule in rules if isinstance(rule, Rule)]
    if len(replayed) < len(rules):
        slos = ", ".join(rule.name for rule in rules if not isinstance(rule, Rule))
        raise fail(f"{file}: backtests replay alert rules, not SLOs ({slos})")
    try:
        every = None if step is None else parse_duration(step)
    except ValueError as exc:
        raise fail(f"--step: {exc}") from None
    start, end = (m if m.tzinfo else m.replace(tzinfo=UTC) for m in (since, until))
    with _open(db) as analytics:
        try:
            views = [analytics.monitor.backtest(rule, start, end, every) for rule in replayed]
        except BacktestError as exc:
            raise fail(escape(str(exc))) from None
    if as_json:
        print_json(views)
        return
    episodes = [(v, i, e) for v in views for i in v.firing for e in i.episodes]
    table = Table(
        title=f"{len(episodes)} firing episodes of {len(views)} rules", title_justify="left"
    )
    for heading in ("rule", "labels", "start", "end", "peak", "severity"):
        table.add_column(heading, overflow="fold")
    for view, instance, episode in episodes:
        table.add_row(
            view.rule,
            ", ".join(f"{k}={v}" for k, v in instance.labels.items()) or "-",
            episode.start.isoformat(),
            "-" if episode.end is None else episode.end.isoformat(),
            "-" if episode.peak is None else f"{episode.peak:.4g}",
            episode.severity,
        )
    out.print(table, markup=False, highlight=False)


@alerts_app.command("list")
def list_alerts(
    rule: Annotated[str | None, typer.Option(help="Only this rule's")] = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Alert instances as last evaluated (all but inactive ones)."""
    with _open(db) as analytics:
        alerts = analytics.monitor.alerts(rule=rule)
    if as_json:
        print_json(alerts)
        return
    table = Table(title=f"{len(alerts)} alerts", title_justify="left")
    for heading in ("rule", "labels", "state", "severity", "value", "since"):
        table.add_column(heading, overflow="fold")
    for alert in alerts:
        own = {k: v for k, v in alert.labels.items() if k not in ("alertname", "severity")}
        table.add_row(
            alert.rule,
            ", ".join(f"{k}={v}" for k, v in own.items()) or "-",
            alert.state,
            alert.severity or "-",
            "-" if alert.value is None else f"{alert.value:.4g}",
            "-" if alert.changed_at is None else alert.changed_at.isoformat(),
        )
    out.print(table, markup=False, highlight=False)


def _show_cycle(reports: list[RuleEvaluation]) -> None:
    for report in reports:
        if report.transitions or report.error:
            what = report.error or f"{report.transitions} of {report.instances} instances changed"
            out.print(
                f"{report.evaluated_at:%Y-%m-%d %H:%M:%S} {report.rule_name}: {what}",
                markup=False,
                highlight=False,
            )


def monitor(
    db: DbOption = DEFAULT_DB,
    once: Annotated[bool, typer.Option("--once", help="One cycle, then exit")] = False,
    period: Annotated[float, typer.Option(min=0.1, max=3600, help="Seconds between cycles")] = 1.0,
    allow_network: Annotated[
        list[str] | None,
        typer.Option(
            envvar="BA_NOTIFY_ALLOWED_NETWORKS",
            help="A network (CIDR) notifications may go to although not public (repeatable)",
        ),
    ] = None,
) -> None:
    """Evaluate the alert rules on their intervals, and send their notifications, until
    interrupted (``serve`` does it too, with one process; run this beside a server of several)."""
    from banking_analytics.monitor import (
        BackgroundEvaluator,
        Notifier,
        Scheduler,
        Sender,
        parse_networks,
    )

    try:
        allowed = parse_networks(
            part for given in allow_network or [] for part in given.split(",") if part.strip()
        )
    except ValueError as exc:
        raise fail(f"--allow-network: {exc}") from None
    with _open(db) as analytics:
        notifier = Notifier(analytics.monitor, Sender(allowed=allowed))
        if once:
            now = datetime.now(UTC)
            _show_cycle(Scheduler(analytics.monitor).run_due(now))
            notifier.tick(now)
            notifier.close()
            return
        evaluator = BackgroundEvaluator(
            analytics.monitor, period_seconds=period, on_cycle=_show_cycle, notifier=notifier
        )
        rules, slos = len(analytics.monitor.rules()), len(analytics.monitor.slos())
        out.print(f"Evaluating {rules} alert rules and {slos} SLOs; Ctrl-C stops")
        evaluator.start()
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            evaluator.stop()
