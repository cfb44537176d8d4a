"""docs/notifications.md as written: its receiver verifies real notifications (and refuses
forged or replayed ones), its body is the body sent, its policy is a valid policy."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import HTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.api import ApiSettings
from banking_analytics.cli import app
from banking_analytics.monitor import (
    SIGNATURE_HEADER,
    NotificationPolicy,
    Notifier,
    Receiver,
    Sender,
    sign_notification,
)
from banking_analytics.monitor._ssrf import parse_networks
from test_monitor_notify import POLICY, fire

DOC = (Path(__file__).parents[1] / "docs" / "notifications.md").read_text()
SECRET = "bawh_docs-example-secret"


def blocks(kind: str) -> list[str]:
    return [b.split("```", 1)[0] for b in DOC.split(f"```{kind}\n")[1:]]


@contextmanager
def docs_receiver() -> Iterator[str]:
    """The documented receiver, run as written (but its secret and port), on loopback."""
    [code] = blocks("py")
    assert 'SECRET = b"bawh_..."' in code
    namespace: dict[str, Any] = {"__name__": "docs_receiver"}
    exec(compile(code.replace("bawh_...", SECRET), "docs/notifications.md", "exec"), namespace)
    server = HTTPServer(("127.0.0.1", 0), namespace["Receiver"])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def duck(tmp_path: Path) -> Iterator[BankingPerformanceAnalytics]:
    with BankingPerformanceAnalytics.open(f"duckdb:///{tmp_path / 'docs.duckdb'}") as analytics:
        yield analytics


def deliver(analytics: BankingPerformanceAnalytics, url: str, secret: str, at: datetime) -> Any:
    store = analytics.monitor.notifications
    store.put_receiver(Receiver("ops", "webhook", url, secret, True, at, "docs"))
    store.put_policy(
        NotificationPolicy.from_dict({**POLICY, "receiver": "ops", "group_wait": "0"}), "d", at
    )
    sender = Sender(allowed=parse_networks(["127.0.0.1/32"]))
    [delivery] = Notifier(analytics.monitor, sender).tick(at)
    return delivery


def test_the_documented_receiver_accepts_a_real_notification(
    duck: BankingPerformanceAnalytics, capsys: pytest.CaptureFixture[str]
) -> None:
    fire(duck)
    with docs_receiver() as url:
        delivery = deliver(duck, url, SECRET, datetime.now(UTC))
    assert (delivery.state, delivery.status_code) == ("delivered", 204)
    assert capsys.readouterr().out.splitlines() == [
        "firing success_low ins_a",
        "firing success_low ins_b",
    ]


@pytest.mark.parametrize(
    ("secret", "late"),
    [("bawh_another-secret", timedelta(0)), (SECRET, timedelta(minutes=10))],
    ids=["forged", "replayed"],
)
def test_the_documented_receiver_refuses_a_forged_or_old_notification(
    duck: BankingPerformanceAnalytics, secret: str, late: timedelta
) -> None:
    fire(duck)
    with docs_receiver() as url:
        delivery = deliver(duck, url, secret, datetime.now(UTC) - late)
    # 401 will not change: no retry, the notification is dead.
    assert (delivery.state, delivery.status_code) == ("dead", 401)


def test_the_documented_body_is_the_body_sent(duck: BankingPerformanceAnalytics) -> None:
    documented = json.loads(blocks("json")[0])
    fire(duck)
    with docs_receiver() as url:
        sent = json.loads(deliver(duck, url, SECRET, datetime.now(UTC)).payload)
    assert list(documented) == list(sent)
    assert list(documented["alerts"][0]) == list(sent["alerts"][0])
    ins_b = sent["alerts"][1]
    assert {k: ins_b[k] for k in ("labels", "annotations", "startsAt", "endsAt")} == {
        k: documented["alerts"][0][k] for k in ("labels", "annotations", "startsAt", "endsAt")
    }
    for key in ("groupKey", "groupLabels", "commonLabels", "status", "receiver", "version"):
        assert sent[key] == documented[key], key


def test_the_documented_policy_is_valid_and_reads_back_as_written() -> None:
    written = json.loads(blocks("json")[1])
    policy = NotificationPolicy.from_dict(written)
    assert policy.receivers == {"ops", "pager", "bank-team"}
    again = policy.as_dict()
    assert again["routes"][1]["matchers"] == written["routes"][1]["matchers"]
    assert NotificationPolicy.from_dict(again) == policy
    critical = {"alertname": "x", "severity": "critical", "institution": "ins_chase"}
    assert [r.receiver for r in policy.route(critical)] == ["pager", "bank-team"]
    assert [r.receiver for r in policy.route({**critical, "severity": "warning"})] == ["bank-team"]
    assert [r.receiver for r in policy.route({"institution": "ins_other"})] == ["ops"]


def test_the_allow_list_is_read_from_the_environment_and_checked() -> None:
    settings = ApiSettings(notify_allowed_networks="10.20.0.0/16, 127.0.0.1/32")  # type: ignore[arg-type]
    assert [str(n) for n in settings.notify_networks()] == ["10.20.0.0/16", "127.0.0.1/32"]
    with pytest.raises(ValueError, match="is not a network"):
        ApiSettings(notify_allowed_networks=["everywhere"])
    result = CliRunner().invoke(
        app, ["monitor", "--once", "--db", "duckdb:///unused.duckdb", "--allow-network", "x/99"]
    )
    assert result.exit_code == 2
    assert "--allow-network: 'x/99' is not a network" in result.output


def test_the_documented_header_has_the_shape_sent() -> None:
    [shown] = [b for b in blocks("") if b.startswith(SIGNATURE_HEADER)]
    documented = shown.strip().split(": ", 1)[1]
    sent = sign_notification(b"{}", SECRET, 1794486720)
    pattern = r"t=[0-9]+,v1=[0-9a-f]{64}"
    assert re.fullmatch(pattern, documented)
    assert re.fullmatch(pattern, sent)
    assert documented.split(",")[0] == sent.split(",")[0]
