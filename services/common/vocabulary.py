"""One vocabulary: the names Alama uses for the protos' enums, derived from the protos.

``LOAN_PRODUCT_SCHOOL_FEES`` is "school_fees" in the REST schemas, the feature definitions, the
contract tables, the stores and the metrics alike; `Vocabulary` derives both directions from the
enum's descriptor, so a value added to a proto has its name everywhere at once, and no service
keeps a hand-written map (or a magic number) that can drift from it. ``*_UNSPECIFIED`` has no
name: it is what an unset field reads as, never a valid choice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from services.common.protos.alama.events.v1.applications_pb2 import Channel, LoanProduct
from services.common.protos.alama.events.v1.decisions_pb2 import DecisionBand
from services.common.protos.alama.events.v1.explanations_pb2 import Explainer
from services.common.protos.alama.events.v1.mobile_money_pb2 import TransactionKind
from services.common.protos.alama.events.v1.reviews_pb2 import ReviewKind


class UnknownName(ValueError):
    """A name that is not in the vocabulary (the message lists the ones that are)."""


@dataclass(frozen=True)
class Vocabulary:
    """The names of one proto enum: ``LOAN_PRODUCT_SCHOOL_FEES`` <-> "school_fees"."""

    enum: EnumTypeWrapper
    prefix: str
    _by_value: dict[int, str] = field(init=False, repr=False, compare=False)
    _by_name: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_value = {
            number: label.removeprefix(self.prefix).lower()
            for label, number in self.enum.items()
            if not label.endswith("_UNSPECIFIED")
        }
        if any(not label.startswith(self.prefix) for label in self.enum.keys()):
            raise ValueError(f"{self.enum.DESCRIPTOR.name}: every value starts with {self.prefix}")
        object.__setattr__(self, "_by_value", by_value)
        object.__setattr__(self, "_by_name", {name: number for number, name in by_value.items()})

    @property
    def names(self) -> tuple[str, ...]:
        """Every name, in the enum's order."""
        return tuple(self._by_value.values())

    def name(self, value: int) -> str | None:
        """The value's name; None for UNSPECIFIED or a number this build does not know."""
        return self._by_value.get(int(value))

    def name_or(self, value: int, default: str) -> str:
        return self._by_value.get(int(value), default)

    def value(self, name: str) -> int:
        """The enum value of a name; `UnknownName` for anything else."""
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownName(
                f"{name!r} is not a {self.enum.DESCRIPTOR.name}; known: {', '.join(self.names)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)


PRODUCTS = Vocabulary(LoanProduct, "LOAN_PRODUCT_")
CHANNELS = Vocabulary(Channel, "CHANNEL_")
BANDS = Vocabulary(DecisionBand, "DECISION_BAND_")
TRANSACTION_KINDS = Vocabulary(TransactionKind, "TRANSACTION_KIND_")
EXPLAINERS = Vocabulary(Explainer, "EXPLAINER_")
REVIEW_KINDS = Vocabulary(ReviewKind, "REVIEW_KIND_")
