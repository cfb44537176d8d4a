"""The rules shipped for the bank-integration metrics (``banking-analytics rules defaults``).

Each threshold is explained in ``docs/monitoring.md`` ("The default rules") and in
the comments of the YAML below, which is what ``rules defaults`` prints and
``rules apply`` reads.
"""

from __future__ import annotations

from banking_analytics.monitor._rules import Rule
from banking_analytics.monitor._yaml import parse_rules

__all__ = ["DEFAULT_RULES_YAML", "default_rules"]

DEFAULT_RULES_YAML = """\
# Default alert rules for bank integrations (banking-analytics rules defaults).
rules:
  # Institution success rate, as institution health defines it: successes ÷
  # (successes + institution failures + aggregator failures). 0.90 and 0.50 are
  # institution health's DEGRADED and DOWN thresholds; 20 attempts is the metric's
  # minimum sample. 5 minutes of breach before firing rides out one unlucky
  # minute; 10 minutes of keep-firing stops a recovering bank from flapping.
  - name: institution_success_rate_low
    metric: connection_success_rate
    window: 30m
    by: [institution]
    condition: below
    warning: 0.90
    critical: 0.50
    for: 5m
    keep_firing_for: 10m
    min_sample: 20
    interval: 1m
    labels: {team: integrations}
    annotations:
      summary: "{{ $labels.institution }}: link success rate {{ $value | percent }}"
      description: >-
        Successful links ÷ links that ended in success or an institution or
        aggregator failure, over the last 30 minutes, is below
        {{ $threshold | percent }} ({{ $severity }}).
  # p95 credential-submit-to-outcome latency. Aggregators answer most links in
  # 2-8 s; a p95 above 15 s means people give up, above 45 s most links time out.
  - name: institution_latency_p95_high
    metric: connection_latency_p95_ms
    window: 30m
    by: [institution]
    condition: above
    warning: 15000
    critical: 45000
    for: 10m
    keep_firing_for: 10m
    min_sample: 20
    interval: 1m
    labels: {team: integrations}
    annotations:
      summary: "{{ $labels.institution }}: p95 link latency {{ $value }} ms"
  # Sync success rate per institution (successes and partial ÷ runs ending in success,
  # partial, or an institution or aggregator failure): an institution's outage shows in
  # its syncs long before in its links, which are rarer. Below 0.80 / 0.50 over an
  # hour with 20 runs at least, for 15 minutes. On a simulated 6,000-user, 35-day
  # world this found 3 of 3 planted outages with 3 of 3 episodes true (docs/monitoring.md).
  - name: institution_sync_success_rate_low
    metric: sync_success_rate
    window: 1h
    by: [institution]
    condition: below
    warning: 0.80
    critical: 0.50
    for: 15m
    keep_firing_for: 15m
    min_sample: 20
    interval: 5m
    labels: {team: integrations}
    annotations:
      summary: "{{ $labels.institution }}: sync success rate {{ $value | percent }}"
  # Sync freshness of the whole pipeline: the age of the newest successful sync of any
  # connection. Thousands of connections sync through the day, so 30 minutes without
  # one success means our sync scheduler, workers or aggregator credentials are down;
  # 2 hours, that nothing has synced since. Not per institution or aggregator: a small
  # bank, or an aggregator syncing once a day in a batch, is routinely hours between
  # successes (the freshness report judges each connection by its own cadence).
  - name: sync_pipeline_stale
    metric: sync_last_success_at
    window: 1d
    condition: above
    warning: 30m
    critical: 2h
    for: 5m
    keep_firing_for: 10m
    interval: 5m
    labels: {team: integrations}
    annotations:
      summary: "No successful sync for {{ $value | duration }}"
  # Error rate by who must act. Aggregator errors (their API is failing) and
  # integration errors (our bug or configuration) are rare in a healthy system:
  # 5% / 15% of all attempts from the aggregator, 1% / 5% of ours, and 2% / 10%
  # rate-limited (we send too much). Per aggregator: that is who to call.
  - name: aggregator_error_rate_high
    metric: connection_error_rate_aggregator
    window: 30m
    by: [aggregator]
    condition: above
    warning: 0.05
    critical: 0.15
    for: 5m
    keep_firing_for: 10m
    min_sample: 50
    labels: {team: integrations}
    annotations:
      summary: "{{ $labels.aggregator }}: {{ $value | percent }} fail at the aggregator"
  - name: integration_error_rate_high
    metric: connection_error_rate_integration
    window: 30m
    by: [aggregator]
    condition: above
    warning: 0.01
    critical: 0.05
    for: 5m
    keep_firing_for: 10m
    min_sample: 50
    labels: {team: app}
    annotations:
      summary: "{{ $labels.aggregator }}: {{ $value | percent }} fail on our side"
  - name: rate_limited_error_rate_high
    metric: connection_error_rate_rate_limited
    window: 30m
    by: [aggregator]
    condition: above
    warning: 0.02
    critical: 0.10
    for: 5m
    keep_firing_for: 10m
    min_sample: 50
    labels: {team: app}
    annotations:
      summary: "{{ $labels.aggregator }}: {{ $value | percent }} of link attempts are rate-limited"
"""


def default_rules() -> list[Rule]:
    """The shipped rules, parsed (and so checked) like any rule file."""
    return [r for r in parse_rules(DEFAULT_RULES_YAML, "default rules") if isinstance(r, Rule)]
