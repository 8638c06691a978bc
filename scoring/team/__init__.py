"""CSM and team performance over a period: what CS leads otherwise build in spreadsheets.

`team_report` gives, for each CSM and rolled up per team, the figures of a period (a
quarter `2026-Q3`, a month `2026-09`, an ISO week `2026-W37`, or two dates), read from the
store with a handful of queries over every account at once. Everything is point in time:
"at the start" means as of the day before the period (the close of the period before), "at
the end" as of its last day, and a row counts once stamped before that day ended.

Whose is what. An account belongs to its owner (`owner_email`, as the CRM says now; no
ownership history is stored) when that is a known CSM, matched by email without regard to
case; every other account rolls up under "(unowned)". Alerts go by `recipient_email` and
playbook tasks by `assignee_email`, the same way. A CSM's team is `team_external_id`.

The figures of a book:

- Live logos and ARR at the end. An account with subscriptions is a customer while one of
  them is alive (started, and neither ended nor canceled, the rule of the
  `subscription_state` measure) and its ARR is 12 x its alive MRR then; an account
  without any subscription counts as a customer, with the ARR the CRM states now (the
  store keeps no ARR history for it).
- Health: the ARR-weighted mean of the customers' latest scores on or before the day, at
  the end and at the start (each over the customers of its day, with that day's ARR);
  unscored customers are left out of the mean. Bands count the customers at the end by
  the band of that score, or unscored.
- GRR, NRR, churned, contracted and expanded ARR: MRR movements between the start and the
  end of the customers paying at the start (`scoring.metrics`), from the subscriptions'
  stored MRR. The store keeps each subscription's latest MRR only, so a plan changed in
  place shows only when a subscription starts or ends; and billing stores no MRR on a
  canceled subscription, so an account whose subscriptions all ended in the period with
  no MRR left on them is taken to have paid the CRM's ARR / 12 at the start (for a
  churned account the CRM's ARR is that of its last contract).
- Renewals: opportunities of a renewal kind closing in the period; won when won, lost
  when closed and not won, as the CRM says now.
- Alerts sent in the period; acknowledged when acknowledged by its end; the median time
  from sending to acknowledging.
- Playbook tasks due in the period; on time when completed by the end of the due day.
- Fresh sentiment: the share of customers at the end with a sentiment entry in the 30
  days before the end.
- Time to value of the accounts created in the year up to the end: from the account's
  creation to the end of its first complete week with active users at least half of its
  licensed seats. Accounts that have not got there by the end are censored, and the
  median comes from a Kaplan-Meier curve (`scoring.metrics.time_to_value`).

Money is in the reporting currency (`store.money.Rates`, `REPORTING_CURRENCY`): each
account's amounts are converted currency by currency at the rates of the period's last day,
the start's as the end's, so GRR and NRR move with the business, not with exchange rates.
Amounts in a currency without a rate are left out, and `TeamReport.missing_rates` names it.

Modules by concern: `periods` (reading a period), `queries` (the set-based SQL), `figures`
(one account's facts and a book's figures, from the queries' results), `report`
(`team_report`: whose is what, teams and totals), `results` (the dataclasses it returns)
and `view` (the Rich table).
"""

from scoring.team.periods import (
    Period,
    PeriodError,
    choose_period,
    last_complete_quarter,
    parse_period,
)
from scoring.team.report import RENEWAL_KINDS, team_report
from scoring.team.results import (
    NO_TEAM,
    UNOWNED,
    Bands,
    BookFigures,
    CsmPerformance,
    TeamPerformance,
    TeamReport,
    TeamReportError,
)
from scoring.team.view import print_team_report

__all__ = [
    "NO_TEAM",
    "RENEWAL_KINDS",
    "UNOWNED",
    "Bands",
    "BookFigures",
    "CsmPerformance",
    "Period",
    "PeriodError",
    "TeamPerformance",
    "TeamReport",
    "TeamReportError",
    "choose_period",
    "last_complete_quarter",
    "parse_period",
    "print_team_report",
    "team_report",
]
