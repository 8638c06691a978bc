"""The customer success metrics library: pure formulas, no database and no I/O.

Inputs are small frozen dataclasses and plain sequences, so callers can build them from
the store or from anything else. Conventions kept throughout:

- money is integer minor units; averages and estimates derived from money (ARPU, cost per
  customer, lifetime value) are floats in minor units, unrounded;
- rates and shares are floats, mostly in [0, 1] (NRR and seat adoption may exceed 1, NPS
  is in [-100, 100]);
- a metric with nothing to measure is undefined, `None`, never 0;
- impossible input (a score outside its scale, negative money, mixed scales or
  currencies) raises `ValueError`.

Modules by theme: `surveys` (NPS, CSAT, CES), `revenue` (MRR, ARR, movements, GRR, NRR,
expansion, ARPU, CLV), `retention` (customer retention and churn rates, retention cost),
`support` (volume, backlog, response and resolution times), `adoption` (seats, features,
time to value).
"""

from scoring.metrics.adoption import (
    FeatureUsage,
    ValueObservation,
    feature_adoption,
    feature_breadth,
    product_adoption,
    time_to_value,
    usage_depth,
    value_observation,
)
from scoring.metrics.retention import (
    CustomerCounts,
    CustomerLifetime,
    customer_counts,
    customer_retention_cost,
    customer_retention_rate,
    logo_churn_rate,
)
from scoring.metrics.revenue import (
    MovementKind,
    MrrBreakdown,
    MrrMovement,
    SubscriptionSnapshot,
    arpu,
    arr,
    customer_lifetime_value,
    expansion_revenue,
    gross_revenue_retention,
    mrr,
    mrr_by_customer,
    mrr_movement_series,
    mrr_movements,
    net_revenue_retention,
)
from scoring.metrics.support import (
    TicketTimes,
    backlog,
    median_first_response_time,
    median_resolution_time,
    ticket_volume,
)
from scoring.metrics.surveys import (
    CES_1_5,
    CES_1_7,
    EffortAnswer,
    EffortScale,
    NpsBreakdown,
    ScaleMismatchError,
    ces,
    csat,
    nps,
    nps_breakdown,
)

__all__ = [
    "CES_1_5",
    "CES_1_7",
    "CustomerCounts",
    "CustomerLifetime",
    "EffortAnswer",
    "EffortScale",
    "FeatureUsage",
    "MovementKind",
    "MrrBreakdown",
    "MrrMovement",
    "NpsBreakdown",
    "ScaleMismatchError",
    "SubscriptionSnapshot",
    "TicketTimes",
    "ValueObservation",
    "arpu",
    "arr",
    "backlog",
    "ces",
    "csat",
    "customer_counts",
    "customer_lifetime_value",
    "customer_retention_cost",
    "customer_retention_rate",
    "expansion_revenue",
    "feature_adoption",
    "feature_breadth",
    "gross_revenue_retention",
    "logo_churn_rate",
    "median_first_response_time",
    "median_resolution_time",
    "mrr",
    "mrr_by_customer",
    "mrr_movement_series",
    "mrr_movements",
    "net_revenue_retention",
    "nps",
    "nps_breakdown",
    "product_adoption",
    "ticket_volume",
    "time_to_value",
    "usage_depth",
    "value_observation",
]
