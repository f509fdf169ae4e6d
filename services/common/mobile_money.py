"""What a mobile-money transaction's amounts may be: one contract for every service that checks.

The gateway's webhook schema (422 for a value outside) and the feature store's event decoding
(a dead letter for a value outside) both take their bounds from here, so the gateway accepts
exactly the transactions the feature store can use. A wallet balance is never negative: an
overdraft (Fuliza) is a transaction kind of its own, ``overdraft_draws``, and the features and
the model were built on balances of zero and above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class KesRange:
    """A finite amount in Kenyan shillings from `minimum` to `maximum`, both included."""

    minimum: float
    maximum: float

    def violation(self, value: float) -> str | None:
        """None for a value inside; otherwise the dead-letter reason that names the defect."""
        if not math.isfinite(value):
            return "invalid_amount"
        if value < self.minimum:
            return "negative_amount" if self.minimum == 0 else "amount_out_of_range"
        if value > self.maximum:
            return "amount_out_of_range"
        return None


#: what one transaction moves
TRANSACTION_AMOUNT_KES = KesRange(minimum=0.0, maximum=1e9)
#: the wallet's balance after the transaction
WALLET_BALANCE_KES = KesRange(minimum=0.0, maximum=1e12)
