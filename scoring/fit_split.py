"""Out-of-sample splits for fitting a scorecard: grouped by account and ordered in time.

A fit judged on what it was fitted on flatters itself twice over in a backtest: the same
account appears at many snapshots (its churn is in every one of them), and a later
snapshot's label is known only after its horizon. So every split here holds two rules:

- **Grouped by account.** Accounts are dealt into `groups` folds once (scikit-learn's
  `GroupKFold`, deterministic); a split judges the accounts of one fold and trains only on
  the others, so no account is both fitted and judged.
- **Forward in time.** A split judges one snapshot day and trains only on snapshots whose
  labels were known by then: `train snapshot + horizon <= judged snapshot`.

Each labelled observation whose snapshot has such a past is judged exactly once (by the
split of its day and its account's fold); the earliest snapshots, with no labelled past,
are never judged. A split whose training set is too small or holds one class only is left
out (its observations stay unjudged).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from sklearn.model_selection import GroupKFold

__all__ = ["GROUPS", "MIN_TRAINING", "Split", "account_folds", "forward_group_splits"]

GROUPS = 5
"""Account folds crossed with the judged snapshot days."""
MIN_TRAINING = 30
"""The fewest training observations a split needs to be fitted."""


@dataclass(frozen=True)
class Split:
    """Train on `train`, judge `judged` (indices into the observations)."""

    judged_day: date
    fold: int
    train: tuple[int, ...]
    judged: tuple[int, ...]


def account_folds(accounts: Sequence[int], groups: int = GROUPS) -> dict[int, int]:
    """Each account's fold (0 to `groups - 1`), balanced by observations per account."""
    unique = sorted(set(accounts))
    if len(unique) < 2:
        return dict.fromkeys(unique, 0)
    folds = GroupKFold(n_splits=min(groups, len(unique)))
    of: dict[int, int] = {}
    for fold, (_, judged) in enumerate(folds.split(list(accounts), groups=list(accounts))):
        for index in judged:
            of[accounts[index]] = fold
    return of


def forward_group_splits(
    keys: Sequence[tuple[int, date]],
    labels: Sequence[bool],
    horizon_days: int,
    *,
    groups: int = GROUPS,
    min_training: int = MIN_TRAINING,
) -> list[Split]:
    """The splits over observations `keys` ((account id, snapshot day), aligned with
    `labels`), judged day by day, oldest first; see the module docstring."""
    fold_of = account_folds([account for account, _ in keys], groups)
    horizon = timedelta(days=horizon_days)
    splits: list[Split] = []
    for day in sorted({d for _, d in keys}):
        known = [i for i, (_, d) in enumerate(keys) if d + horizon <= day]
        for fold in sorted(set(fold_of.values())):
            train = tuple(i for i in known if fold_of[keys[i][0]] != fold)
            judged = tuple(
                i for i, (account, d) in enumerate(keys) if d == day and fold_of[account] == fold
            )
            classes = {labels[i] for i in train}
            if judged and len(train) >= min_training and classes == {True, False}:
                splits.append(Split(day, fold, train, judged))
    return splits
