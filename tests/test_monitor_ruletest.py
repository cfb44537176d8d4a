"""Rule unit tests (promtool's format): every case of tests/rule_cases passes, a wrong
expectation fails as it should, and bad test files are line-numbered errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from banking_analytics.cli import app
from banking_analytics.monitor import RuleFileError, expand_series, run_rule_tests

CASES = sorted((Path(__file__).parent / "rule_cases").glob("*.yaml"))


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_rule_case(case: Path) -> None:
    report = run_rule_tests(str(case))
    assert report.failures == []
    assert report.checks > 0


def test_the_cases_cover_every_timer_and_state() -> None:
    assert {c.stem for c in CASES} >= {
        "for",
        "keep_firing_for",
        "severity",
        "nodata",
        "min_sample",
        "per_label",
        "change",
        "burn_rate",
    }
    text = "\n".join(c.read_text() for c in CASES)
    for state in ("pending", "recovering", "nodata"):
        assert f"exp_state: {state}" in text


def test_expanding_notation_as_promtool_reads_it() -> None:
    assert expand_series("1+1x3") == [1, 2, 3, 4]
    assert expand_series("10-2x2 _x2 stale 7") == [10, 8, 6, None, None, None, 7]
    assert expand_series("0.99x2 0.5") == [0.99, 0.99, 0.99, 0.5]
    assert expand_series("-1e3 .5x1") == [-1000, 0.5, 0.5]
    for bad in ("1+x3", "abc", "1x", "inf"):
        with pytest.raises(ValueError, match="not a value"):
            expand_series(bad)


WRONG = """\
rules:
  - name: success_low
    metric: connection_success_rate
    window: 30m
    condition: below
    critical: 0.5
    for: 2m
tests:
  - name: expects firing too early
    input_series:
      - series: connection_success_rate
        values: '0.3x5'
    alert_rule_test:
      - eval_time: 1m
        alertname: success_low
        exp_alerts:
          - exp_labels: {severity: critical}
"""


def test_a_wrong_expectation_fails_and_says_what_it_got(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(WRONG)
    report = run_rule_tests(str(wrong))
    assert report.failures == [
        "[expects firing too early] line 14: alertname: success_low, time: 1m,\n"
        "    exp: [firing {'severity': 'critical'}]\n"
        "    got: [pending {'severity': 'critical'}]"
    ]
    result = cli("rules", "test", str(wrong))
    assert result.exit_code == 1
    assert "FAILED" in result.stdout
    assert "got: [pending {'severity': 'critical'}]" in result.stdout


def test_bad_test_files_are_line_numbered_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(WRONG.replace("'0.3x5'", "'0.3x5 oops'"))
    with pytest.raises(RuleFileError) as caught:
        run_rule_tests(str(bad))
    assert caught.value.lines == [
        f"{bad}:12: tests[0].input_series[0].values: 'oops' is not a value, _, stale, a+bxn or axn"
    ]
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(WRONG.replace("alertname: success_low", "alertname: nope"))
    with pytest.raises(RuleFileError, match=r"unknown.yaml:15: .*alertname: no rule named 'nope'"):
        run_rule_tests(str(unknown))
    result = cli("rules", "test", str(bad))
    assert result.exit_code == 2
    assert "is not a value" in result.stderr
    missing = cli("rules", "test", str(tmp_path / "missing.yaml"))
    assert missing.exit_code == 2
    assert "cannot read" in missing.stderr


def test_an_slo_series_without_samples_is_a_line_numbered_error(tmp_path: Path) -> None:
    case = (Path(__file__).parent / "rule_cases" / "burn_rate.yaml").read_text()
    bad = tmp_path / "no_samples.yaml"
    bad.write_text(case.replace("        samples: '1000x490'\n", ""))
    with pytest.raises(RuleFileError) as caught:
        run_rule_tests(str(bad))
    assert caught.value.lines == [
        f"{bad}:27: tests[0].input_series[0]: a series of an SLO's SLI gives samples: "
        "the events behind each value"
    ]


def test_the_command_runs_the_whole_directory() -> None:
    result = cli("rules", "test", *map(str, CASES))
    assert result.exit_code == 0, result.output
    assert result.stdout.count("SUCCESS") == len(CASES)
