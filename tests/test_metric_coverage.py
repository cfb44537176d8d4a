"""Every catalogue metric is value-checked on every engine, against a figure worked out by
hand and against an independent pandas computation.

The two tests that check values declare what they check, and each asserts it
checked all it declares: ``HAND_CUTS`` (tests/test_metrics_handworked.py) and
``REFERENCES`` (tests/test_metrics_vs_pandas.py); metrics that need a day bucket or
span sources (rolling and derived ones, derived sources) are checked, and declared,
in tests/test_query_layer.py. The revenue metrics the subscription ledger provides are
checked by the revenue suites (tests/test_revenue_handworked.py by hand,
tests/test_revenue_vs_pandas.py against pandas), which also check every one of them
through the metric layer (``LEDGER_METRICS``). This test holds the declarations to the
catalogue, so a metric added without its checks fails here, on any engine selection,
without a store.
"""

from __future__ import annotations

from banking_analytics.metrics import CATALOG
from test_metrics_handworked import HAND_CUTS
from test_metrics_vs_pandas import REFERENCES
from test_query_layer import HAND_CHECKED, PANDAS_CHECKED
from test_revenue_vs_pandas import LEDGER_METRICS


def test_every_catalogue_metric_has_a_hand_worked_figure() -> None:
    checked = {name for cut in HAND_CUTS for figures in cut.rows.values() for name in figures}
    checked |= HAND_CHECKED | LEDGER_METRICS
    missing = sorted(set(CATALOG) - checked)
    assert not missing, f"add hand-worked figures to HAND_CUTS for: {', '.join(missing)}"
    assert checked <= set(CATALOG), sorted(checked - set(CATALOG))


def test_every_catalogue_metric_has_a_pandas_reference() -> None:
    checked = set(REFERENCES) | PANDAS_CHECKED | LEDGER_METRICS
    missing = sorted(set(CATALOG) - checked)
    assert not missing, f"add pandas references to REFERENCES for: {', '.join(missing)}"
    assert checked <= set(CATALOG), sorted(checked - set(CATALOG))
