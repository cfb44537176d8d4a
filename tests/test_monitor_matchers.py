"""Label matchers, routes and inhibit rules, as Alertmanager reads them (no store needed)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from banking_analytics.monitor import Matcher, MatcherError, NotificationPolicy, PolicyError

ALERT = {"alertname": "success_low", "institution": "ins_b", "severity": "critical"}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ('severity="critical"', True),
        ("severity=critical", True),
        ('severity!="critical"', False),
        ('institution=~"ins_.*"', True),
        ('institution=~"ins"', False),  # anchored: the whole value must match
        ('institution!~"ins_[ac]"', True),
        ('team=""', True),  # a label the alert lacks reads as ""
        ('team!=""', False),
        ('alertname=~"success_low|other"', True),
    ],
)
def test_matchers_read_and_match_as_alertmanager_does(text: str, matches: bool) -> None:
    assert Matcher.parse(text).matches(ALERT) is matches


def test_a_matcher_is_written_back_as_it_reads() -> None:
    tricky = Matcher.parse(r'summary=~"say \"hi\" \\ bye"')
    assert tricky.value == r'say "hi" \ bye'
    assert Matcher.parse(str(tricky)) == tricky
    assert Matcher.parse(' severity = "critical" ') == Matcher.parse('severity="critical"')


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("severity", "is not a matcher"),
        ('1abc="x"', "is not a matcher"),
        ('severity=="x"', "is not a matcher"),
        ('institution=~"("', "the regular expression does not compile"),
    ],
)
def test_bad_matchers_are_refused_saying_why(text: str, message: str) -> None:
    with pytest.raises(MatcherError, match=message):
        Matcher.parse(text)


def test_routes_are_tried_in_order_and_continue_goes_on() -> None:
    policy = NotificationPolicy.from_dict(
        {
            "receiver": "default",
            "group_by": ["alertname"],
            "group_interval": "10m",
            "routes": [
                {"matchers": ['severity="critical"'], "receiver": "pager", "continue": True},
                {"matchers": ['institution="ins_b"'], "receiver": "bank", "group_wait": "0"},
                {"matchers": ['severity="critical"'], "receiver": "never"},
            ],
        }
    )
    taken = policy.route(ALERT)
    assert [(r.route, r.receiver) for r in taken] == [(0, "pager"), (1, "bank")]
    assert taken[1].timers.group_wait == timedelta(0)
    assert taken[1].timers.group_interval == timedelta(minutes=10)  # the policy's
    assert taken[0].timers.group_wait == timedelta(seconds=30)  # Alertmanager's default
    assert [r.receiver for r in policy.route({"alertname": "x"})] == ["default"]
    assert NotificationPolicy.from_dict({"routes": []}).route(ALERT) == []  # no default


def test_inhibition_needs_equal_labels_and_never_mutes_its_own_kind() -> None:
    policy = NotificationPolicy.from_dict({"receiver": "r"})  # the default inhibit rule
    warning = {**ALERT, "alertname": "latency_high", "severity": "warning"}
    assert policy.inhibited(warning, [ALERT])
    assert not policy.inhibited({**warning, "institution": "ins_a"}, [ALERT])
    assert not policy.inhibited(ALERT, [ALERT, warning])
    both = NotificationPolicy.from_dict(
        {
            "receiver": "r",
            "inhibit_rules": [
                {"source_matchers": ['team="x"'], "target_matchers": ['team="x"'], "equal": []}
            ],
        }
    )
    assert not both.inhibited({"team": "x", "a": "1"}, [{"team": "x", "a": "2"}])
    assert (
        NotificationPolicy.from_dict({"receiver": "r", "inhibit_rules": []}).inhibited(
            warning, [ALERT]
        )
        is False
    )


def test_a_bad_policy_names_every_field_at_fault() -> None:
    with pytest.raises(PolicyError) as bad:
        NotificationPolicy.from_dict(
            {
                "receiver": 3,
                "group_by": "alertname",
                "group_interval": "0",
                "routes": [{"matchers": "x"}, "nope", {"receiver": "a", "continue": "yes"}],
                "inhibit_rules": [{"source_matchers": ["bad"], "equals": []}],
            }
        )
    assert [field for field, _ in bad.value.problems] == [
        "receiver",
        "group_by",
        "group_interval",
        "routes[0].receiver",
        "routes[0].matchers",
        "routes[1]",
        "routes[2].continue",
        "inhibit_rules[0].equals",
        "inhibit_rules[0].source_matchers[0]",
    ]
