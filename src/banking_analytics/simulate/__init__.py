"""A realistic simulated fintech: users, banks, features and subscriptions.

``run_simulation`` plays a seeded world forward and streams its events, in
the stored schema of each event type, to a sink; it returns the
:class:`GroundTruth` the analytics can be checked against (planted outages,
true feature effects on upgrades, churn drivers and churn dates).
"""

from banking_analytics.simulate._config import EventSink, SimulationConfig
from banking_analytics.simulate._generate import run_simulation
from banking_analytics.simulate._truth import (
    ChurnDriver,
    GroundTruth,
    InstitutionTruth,
    OutageWindow,
)

__all__ = [
    "ChurnDriver",
    "EventSink",
    "GroundTruth",
    "InstitutionTruth",
    "OutageWindow",
    "SimulationConfig",
    "run_simulation",
]
