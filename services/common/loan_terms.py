"""The data contract's loan terms, shared by whatever produces loans (core banking, played by the
simulator) and whatever judges them (the outcomes service): the default is 90 or more days past
due on an instalment due within 12 months of disbursement (docs/data-contract.md, `default_12m`),
and schedule months are counted from the disbursement day."""

from __future__ import annotations

from datetime import datetime

WINDOW_MONTHS = 12
DEFAULT_DAYS_LATE = 90


def add_months(moment: datetime, months: int) -> datetime:
    """The same day `months` later (the month's last day where it is shorter)."""
    month = moment.month - 1 + months
    year, month = moment.year + month // 12, month % 12 + 1
    for day in (moment.day, 30, 29, 28):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise ValueError(f"no day in {year}-{month}")  # unreachable: every month has a 28th
