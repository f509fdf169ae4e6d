"""The data contract for a lender's history: the tables Alama trains on, whatever their source.

A SACCO's core banking export, the Home Credit files and the synthetic world all become these
tables; from here on (feature snapshots, Feast, training, evaluation, export) the pipeline cannot
tell which source they came from. Each table is a pandera DataFrameModel: one definition that the
importer validates against, `docs/data-contract.md` is generated from (`python -m training
contract`), and the tests exercise.

Conventions for every table:
- money is in Kenya shillings (KES), as plain numbers;
- every timestamp is an instant with an explicit offset in the source (ISO 8601, e.g.
  `2025-03-01T09:30:00+03:00`), stored in UTC; a timestamp without a time zone is rejected unless
  the import names the zone it was written in (`--assume-timezone Africa/Nairobi`);
- identifiers are text; a national id or phone number is personal data, never a model input;
- a column marked protected (gender, age, age band, county) is kept for fairness audits only and
  is never a model input (DESIGN.md).

Default definition: an application's `default_12m` is 1 when the loan it funded went 90 or more
days past due within 12 months of disbursement, 0 when it did not, or the lender's own default
flag where it has one; empty when the outcome is not known yet (or the application was declined).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Optional

import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.parquet as pq
from pandera.typing import Series

from services.common.features import EMPLOYMENT_TYPES, PRODUCTS, TRANSACTION_KINDS
from services.common.members import DEV_TENANT

CONTRACT_VERSION = 1
GENDERS = ("female", "male", "other")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
CHANNELS = ("branch", "mobile_app", "ussd", "partner_api", "agent", "other")
LOAN_STATUSES = ("active", "closed", "written_off")
BUREAUS = ("metropol", "transunion", "creditinfo", "other")
LENDER_TYPES = ("bank", "sacco", "microfinance", "digital_lender", "mobile_money", "other")
BUREAU_ACCOUNT_STATUSES = ("open", "closed", "written_off", "sold", "unknown")

UTC = Annotated[pd.DatetimeTZDtype, "ns", "UTC"]


def column(
    description: str,
    *,
    unit: str | None = None,
    key: str | None = None,
    protected: bool = False,
    personal: bool = False,
    references: str | None = None,
    **checks: Any,
) -> Any:
    """A contract column: pandera checks plus what the documentation and the importer read.

    `key` names the table's key this column is part of ("primary" or a composite key's name),
    `references` is "table.column" for a reference checked on import.
    """
    return pa.Field(
        description=description,
        metadata={
            "unit": unit,
            "key": key,
            "protected": protected,
            "personal": personal,
            "references": references,
        },
        **checks,
    )


class Members(pa.DataFrameModel):
    """One row per member of the lender (or per applicant, for a lender without membership)."""

    member_id: Series[str] = column("The lender's member number.", key="primary")
    sacco_id: Series[str] = column(
        "The SACCO or partner the member belongs to (the tenant).", str_length={"min_value": 1}
    )
    national_id: Series[str] = column(
        "National id number; pseudonymised before it reaches any event.",
        personal=True,
        nullable=True,
    )
    phone_number: Series[str] = column(
        "Mobile number (MSISDN, 2547XXXXXXXX); links mobile-money statements.",
        personal=True,
        nullable=True,
    )
    gender: Series[str] = column(
        "Gender as recorded by the lender.", protected=True, nullable=True, isin=list(GENDERS)
    )
    age: Series[pd.Int64Dtype] = column(
        "Age in whole years at the member's latest application.",
        unit="years",
        protected=True,
        nullable=True,
        ge=18,
        le=110,
    )
    age_band: Optional[Series[str]] = column(  # noqa: UP045 (pandera reads Optional)
        "Age band; derived from age when absent.",
        protected=True,
        nullable=True,
        isin=list(AGE_BANDS),
    )
    county: Series[str] = column(
        "County of residence.", protected=True, nullable=True, str_length={"max_value": 64}
    )
    employment_type: Series[str] = column(
        "Main source of income.", nullable=True, isin=list(EMPLOYMENT_TYPES)
    )
    monthly_income_kes: Series[pd.Float64Dtype] = column(
        "Monthly income the lender holds on file.", unit="KES", nullable=True, ge=0
    )
    joined_at: Series[UTC] = column("When the member joined the lender.", unit="UTC instant")

    class Config:
        strict = True


class ProfileSnapshots(pa.DataFrameModel):
    """The member's account position as the core banking system reported it (e.g. monthly)."""

    member_id: Series[str] = column(
        "The member.", key="member_snapshot", references="members.member_id"
    )
    snapshot_at: Series[UTC] = column(
        "When the position was taken.", key="member_snapshot", unit="UTC instant"
    )
    tenure_months: Series[pd.Int64Dtype] = column(
        "Months of membership at the snapshot.", unit="months", ge=0
    )
    deposits_kes: Series[pd.Float64Dtype] = column(
        "Non-withdrawable deposits (BOSA).", unit="KES", ge=0
    )
    share_capital_kes: Series[pd.Float64Dtype] = column("Share capital held.", unit="KES", ge=0)
    n_guarantors: Series[pd.Int64Dtype] = column(
        "Members guaranteeing the member's loans at the snapshot.", ge=0, le=100
    )
    existing_loans: Series[pd.Int64Dtype] = column(
        "Loans outstanding with the lender.", ge=0, le=100
    )
    existing_loan_balance_kes: Series[pd.Float64Dtype] = column(
        "Outstanding principal on those loans.", unit="KES", ge=0
    )
    bureau_listed: Series[pd.Int64Dtype] = column(
        "1 if a credit reference bureau lists the member negatively, else 0.", isin=[0, 1]
    )
    monthly_income_kes: Series[pd.Float64Dtype] = column(
        "Monthly income on file at the snapshot.", unit="KES", nullable=True, ge=0
    )
    employment_type: Series[str] = column(
        "Main source of income at the snapshot.", nullable=True, isin=list(EMPLOYMENT_TYPES)
    )

    class Config:
        strict = True


class Applications(pa.DataFrameModel):
    """One row per loan application, with its outcome where it is known."""

    application_id: Series[str] = column("The application's id.", key="primary")
    member_id: Series[str] = column("The applicant.", references="members.member_id")
    sacco_id: Series[str] = column("The tenant the application was made to.")
    applied_at: Series[UTC] = column("When the application was submitted.", unit="UTC instant")
    product: Series[str] = column("Loan product.", isin=list(PRODUCTS))
    amount_kes: Series[pd.Float64Dtype] = column("Amount applied for.", unit="KES", gt=0)
    term_months: Series[pd.Int64Dtype] = column("Repayment term.", unit="months", ge=1, le=120)
    channel: Series[str] = column("Where it was submitted.", nullable=True, isin=list(CHANNELS))
    declared_monthly_income_kes: Series[pd.Float64Dtype] = column(
        "Income the applicant declared on the form.", unit="KES", nullable=True, ge=0
    )
    default_12m: Series[pd.Int64Dtype] = column(
        "Outcome: 1 = 90+ days past due within 12 months of disbursement (or the lender's "
        "default flag), 0 = not; empty while unknown or when the application was declined.",
        nullable=True,
        isin=[0, 1],
    )
    outcome_at: Series[UTC] = column(
        "When the outcome became known (the 90-day mark, or the end of the 12-month window); "
        "must be after applied_at.",
        unit="UTC instant",
        nullable=True,
    )

    class Config:
        strict = True


class Loans(pa.DataFrameModel):
    """Loans disbursed, including earlier loans with no application in the export."""

    loan_id: Series[str] = column("The loan's id.", key="primary")
    member_id: Series[str] = column("The borrower.", references="members.member_id")
    application_id: Series[str] = column(
        "The application that led to it, where it is in the export.",
        nullable=True,
        references="applications.application_id",
    )
    product: Series[str] = column("Loan product.", nullable=True, isin=list(PRODUCTS))
    principal_kes: Series[pd.Float64Dtype] = column("Principal disbursed.", unit="KES", gt=0)
    term_months: Series[pd.Int64Dtype] = column("Repayment term.", unit="months", ge=1, le=120)
    disbursed_at: Series[UTC] = column("When the money went out.", unit="UTC instant")
    status: Series[str] = column("State at the cut-off.", nullable=True, isin=list(LOAN_STATUSES))

    class Config:
        strict = True


class Repayments(pa.DataFrameModel):
    """One row per instalment due: the schedule and what was paid against it."""

    loan_id: Series[str] = column("The loan.", key="instalment", references="loans.loan_id")
    member_id: Series[str] = column("The borrower.", references="members.member_id")
    due_date: Series[UTC] = column(
        "When the instalment fell due.", key="instalment", unit="UTC instant"
    )
    amount_due_kes: Series[pd.Float64Dtype] = column("Amount due.", unit="KES", ge=0)
    amount_paid_kes: Series[pd.Float64Dtype] = column("Amount paid against it.", unit="KES", ge=0)
    days_late: Series[pd.Int64Dtype] = column(
        "Days past due when recorded.", unit="days", ge=0, le=3650
    )
    recorded_at: Series[UTC] = column(
        "When the payment (or its absence) was recorded.", unit="UTC instant"
    )

    class Config:
        strict = True


class MobileMoney(pa.DataFrameModel):
    """Mobile-money statement lines (M-Pesa style), one row per transaction."""

    transaction_id: Series[str] = column("The provider's transaction id.", key="primary")
    member_id: Series[str] = column("The wallet's owner.", references="members.member_id")
    occurred_at: Series[UTC] = column("When it happened.", unit="UTC instant")
    kind: Series[str] = column("What kind of transaction.", isin=list(TRANSACTION_KINDS))
    amount_kes: Series[pd.Float64Dtype] = column("Amount moved.", unit="KES", ge=0)
    balance_kes: Series[pd.Float64Dtype] = column(
        "Wallet balance after it (negative while an overdraft is drawn).", unit="KES"
    )

    class Config:
        strict = True


class Bureau(pa.DataFrameModel):
    """Credit reference bureau (CRB) records: accounts, arrears and listings at other lenders."""

    member_id: Series[str] = column(
        "The member the report is about.", references="members.member_id"
    )
    bureau: Series[str] = column("Which CRB reported it.", key="bureau_record", isin=list(BUREAUS))
    account_id: Series[str] = column("The reporting lender's account id.", key="bureau_record")
    reported_at: Series[UTC] = column(
        "When the bureau reported this state.", key="bureau_record", unit="UTC instant"
    )
    lender_type: Series[str] = column(
        "Kind of lender holding the account.", nullable=True, isin=list(LENDER_TYPES)
    )
    opened_at: Series[UTC] = column(
        "When the account was opened; not after reported_at.", unit="UTC instant", nullable=True
    )
    amount_kes: Series[pd.Float64Dtype] = column(
        "Credit limit or principal.", unit="KES", nullable=True, ge=0
    )
    balance_kes: Series[pd.Float64Dtype] = column(
        "Outstanding balance.", unit="KES", nullable=True, ge=0
    )
    arrears_kes: Series[pd.Float64Dtype] = column(
        "Amount in arrears.", unit="KES", nullable=True, ge=0
    )
    days_past_due: Series[pd.Int64Dtype] = column(
        "Days past due at reporting.", unit="days", nullable=True, ge=0, le=36500
    )
    status: Series[str] = column(
        "Account state.", nullable=True, isin=list(BUREAU_ACCOUNT_STATUSES)
    )
    negative_listing: Series[pd.Int64Dtype] = column(
        "1 if the account carries a negative listing, else 0.", isin=[0, 1]
    )

    class Config:
        strict = True


class Guarantors(pa.DataFrameModel):
    """Guarantees pledged by members on an application (SACCO loans are guaranteed by members)."""

    application_id: Series[str] = column(
        "The guaranteed application.",
        key="guarantee",
        references="applications.application_id",
    )
    guarantor_member_id: Series[str] = column(
        "The guaranteeing member.", key="guarantee", references="members.member_id"
    )
    amount_guaranteed_kes: Series[pd.Float64Dtype] = column("Amount pledged.", unit="KES", ge=0)
    pledged_at: Series[UTC] = column("When it was pledged.", unit="UTC instant")

    class Config:
        strict = True


@dataclass(frozen=True)
class TableSpec:
    """One contract table: its model, whether a source must provide it, and its time checks."""

    name: str
    model: type[pa.DataFrameModel]
    required: bool
    #: (earlier, later): `later` may not precede `earlier` within a row.
    ordered: tuple[tuple[str, str], ...] = ()

    @property
    def schema(self) -> pa.DataFrameSchema:
        return self.model.to_schema()

    @property
    def columns(self) -> dict[str, pa.Column]:
        return dict(self.schema.columns)

    def key_columns(self) -> dict[str, tuple[str, ...]]:
        """Key name -> its columns, in table order."""
        keys: dict[str, list[str]] = {}
        for name, col in self.columns.items():
            key = (col.metadata or {}).get("key")
            if key:
                keys.setdefault(key, []).append(name)
        return {k: tuple(v) for k, v in keys.items()}

    def timestamp_columns(self) -> tuple[str, ...]:
        return tuple(n for n, c in self.columns.items() if "datetime" in str(c.dtype))

    def references(self) -> dict[str, str]:
        return {
            n: c.metadata["references"]
            for n, c in self.columns.items()
            if (c.metadata or {}).get("references")
        }


TABLES: tuple[TableSpec, ...] = (
    TableSpec("members", Members, required=True),
    TableSpec("applications", Applications, required=True, ordered=(("applied_at", "outcome_at"),)),
    TableSpec("profile_snapshots", ProfileSnapshots, required=False),
    TableSpec("loans", Loans, required=False),
    TableSpec("repayments", Repayments, required=False),
    TableSpec("mobile_money", MobileMoney, required=False),
    TableSpec("bureau", Bureau, required=False, ordered=(("opened_at", "reported_at"),)),
    TableSpec("guarantors", Guarantors, required=False),
)
TABLE_SPECS: dict[str, TableSpec] = {t.name: t for t in TABLES}
PROTECTED_COLUMNS: tuple[str, ...] = tuple(
    n for n, c in TABLE_SPECS["members"].columns.items() if c.metadata["protected"]
)


def age_band(age: pd.Series) -> pd.Series:
    """The contract's age bands from whole years (NA stays NA)."""
    bins = [0, 25, 35, 45, 55, 200]
    return (
        pd.cut(age.astype("Float64"), bins=bins, right=False, labels=list(AGE_BANDS))
        .astype("string")
        .astype(object)
        .where(age.notna(), None)
    )


@dataclass(eq=False)
class LoanBook:
    """A lender's history as contract tables, from any source; what training reads.

    `oracle` holds the true probability of default per application where the source knows it
    (only the synthetic world does); it is never a model input.
    """

    tables: dict[str, pd.DataFrame]
    source: str
    cutoff: pd.Timestamp
    oracle: pd.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    TABLE_NAMES: ClassVar[tuple[str, ...]] = tuple(TABLE_SPECS)

    def table(self, name: str) -> pd.DataFrame:
        """A table, or an empty one with the contract's columns when the source lacks it."""
        if name in self.tables:
            return self.tables[name]
        return pd.DataFrame({c: pd.Series(dtype=object) for c in TABLE_SPECS[name].columns})

    @property
    def tenant(self) -> str:
        """The SACCO whose book this is: its members' features are kept under its keys
        (services.common.members). A book that names none (the synthetic world) is the
        development tenant's."""
        return str(self.meta.get("tenant") or DEV_TENANT)

    def has(self, name: str) -> bool:
        return name in self.tables and len(self.tables[name]) > 0

    @property
    def members(self) -> pd.DataFrame:
        return self.table("members")

    @property
    def applications(self) -> pd.DataFrame:
        return self.table("applications")

    @property
    def profile_snapshots(self) -> pd.DataFrame:
        return self.table("profile_snapshots")

    @property
    def repayments(self) -> pd.DataFrame:
        return self.table("repayments")

    @property
    def mobile_money(self) -> pd.DataFrame:
        return self.table("mobile_money")

    @property
    def labelled(self) -> pd.DataFrame:
        """Applications whose outcome is known: what a model can learn from and be judged on."""
        apps = self.applications
        return apps[apps["default_12m"].notna()].reset_index(drop=True)

    def save(self, folder: Path) -> None:
        """One parquet per table present, the oracle if any, and loanbook.json."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, table in self.tables.items():
            table.to_parquet(folder / f"{name}.parquet", index=False)
        if self.oracle is not None:
            self.oracle.to_parquet(folder / "oracle.parquet", index=False)
        (folder / "loanbook.json").write_text(json.dumps(self.describe(), indent=2) + "\n")

    def describe(self) -> dict[str, Any]:
        return {
            "contract_version": CONTRACT_VERSION,
            "source": self.source,
            "cutoff": self.cutoff.isoformat(),
            "rows": {name: len(t) for name, t in self.tables.items()},
            "fingerprint": self.fingerprint(),
            **self.meta,
        }

    @classmethod
    def load(cls, folder: Path) -> LoanBook:
        info = json.loads((folder / "loanbook.json").read_text())
        if info.get("contract_version") != CONTRACT_VERSION:
            raise ValueError(
                f"{folder} holds contract version {info.get('contract_version')}, "
                f"this code reads {CONTRACT_VERSION}; import it again"
            )
        tables = {
            name: read_table(folder / f"{name}.parquet")
            for name in TABLE_SPECS
            if (folder / f"{name}.parquet").exists()
        }
        oracle_path = folder / "oracle.parquet"
        meta = {
            k: v
            for k, v in info.items()
            if k not in {"contract_version", "source", "cutoff", "rows", "fingerprint", "files"}
        }
        return cls(
            tables=tables,
            source=str(info["source"]),
            cutoff=pd.Timestamp(info["cutoff"]),
            oracle=pd.read_parquet(oracle_path) if oracle_path.exists() else None,
            meta=meta,
        )

    def fingerprint(self) -> str:
        """sha256 over every table's name, columns and values (not dtypes: a CSV round trip
        turns categories into text and must keep the fingerprint)."""
        digest = hashlib.sha256()
        for name in sorted(self.tables):
            table = self.tables[name]
            digest.update(name.encode())
            for col in table.columns:
                digest.update(col.encode())
                values = table[col]
                if isinstance(values.dtype, pd.CategoricalDtype):
                    values = values.astype(object)
                digest.update(
                    pd.util.hash_pandas_object(values.astype(object), index=False)
                    .to_numpy()
                    .tobytes()
                )
        return digest.hexdigest()


_NULLABLE = {pa_arrow.int64(): pd.Int64Dtype(), pa_arrow.float64(): pd.Float64Dtype()}


def read_table(path: Path) -> pd.DataFrame:
    """A contract table from parquet with the contract's nullable number types (text as str)."""
    return pq.read_table(path).to_pandas(types_mapper=_NULLABLE.get)
