"""Synthetic SACCO world: members, their behaviour, and a default probability we know.

No real SACCO data is public, so every model is trained and judged on a generated world whose
true probability of default (`true_pd`) is known: a model's AUC is read against the oracle AUC of
`true_pd`. The PD is a function of latent traits (discipline, recent financial stress) that the
observable tables reflect with modest noise, plus observable loan terms, so a good model can get
close to the oracle but never past it without leakage. The equations are in `training/WORLD.md`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pandas as pd

from services.common.features import EMPLOYMENT_TYPES, PRODUCTS, TRANSACTION_KINDS

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

GENDERS = ("female", "male")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
CHANNELS = ("branch", "mobile_app", "ussd", "partner_api")
SACCO_IDS = tuple(f"S{i:02d}" for i in range(1, 9))
# county: (population weight, urban share, drought proneness)
COUNTIES: dict[str, tuple[float, float, float]] = {
    "Nairobi": (0.20, 1.00, 0.00),
    "Mombasa": (0.07, 0.90, 0.10),
    "Kisumu": (0.06, 0.50, 0.15),
    "Nakuru": (0.08, 0.40, 0.20),
    "Kiambu": (0.09, 0.60, 0.10),
    "Machakos": (0.06, 0.30, 0.45),
    "Meru": (0.06, 0.15, 0.30),
    "Nyeri": (0.04, 0.20, 0.15),
    "Kakamega": (0.06, 0.15, 0.10),
    "Uasin Gishu": (0.05, 0.30, 0.15),
    "Kericho": (0.04, 0.15, 0.10),
    "Bungoma": (0.05, 0.10, 0.10),
    "Kitui": (0.05, 0.10, 0.60),
    "Kilifi": (0.05, 0.20, 0.50),
    "Turkana": (0.04, 0.10, 0.70),
}
COUNTY_NAMES = tuple(COUNTIES)

APPLICATION_YEAR = 2025
HISTORY_MONTHS = 24
MOBILE_MONEY_DAYS_BEFORE = 91
MOBILE_MONEY_DAYS_AFTER = 30
SNAPSHOT_MONTHS = tuple(range(-6, 4))
FLAT_INTEREST_PER_YEAR = 0.12

# Month grid relative to the application month (0); the start is burn-in for the AR(1) process.
_K_MIN, _K_MAX = -36, 3
_SECONDS_PER_DAY = 86_400
_NS = 1_000_000_000

# Per employment type (salaried, self_employed, farmer, casual).
_INCOME_MEDIAN = np.array([48_000.0, 32_000.0, 20_000.0, 15_000.0])
_INCOME_SIGMA = np.array([0.45, 0.60, 0.50, 0.40])
_STRESS_LEVEL = np.array([-0.25, 0.05, 0.10, 0.30])
_JOB_LOSS_HAZARD = np.array([0.005, 0.006, 0.0, 0.015])
_INFLOW_RATE = np.array([0.2, 0.8, 0.3, 0.5])
_OUTFLOW_RATE = np.array([0.45, 0.8, 0.4, 0.5])
_EMPLOYMENT_RISK = np.array([0.0, 0.15, 0.20, 0.35])

# Stress process.
_RHO = 0.7
_STRESS_NOISE = 0.45
_UNEMPLOYED_STRESS = 0.9
_DROUGHT_STRESS = (0.3, 0.9)  # (non-farmer, farmer)
_SCHOOL_MONTHS = (0, 4, 8)  # January, May, September (month of year, 0-based)
_AMOUNT_SIGMA = np.array([0.7, 0.05, 0.8, 0.5, 0.4, 0.2, 0.7])  # per flow source, see below
_SOURCE_KIND = np.array([0, 0, 1, 2, 3, 3, 4], dtype=np.int8)  # source -> TRANSACTION_KINDS
_FARM_SEASON = np.array([-0.15, -0.15, 0.35, 0.35, 0.35, 0.0, -0.35, -0.35, 0.0, 0.15, 0.15, 0.0])


# ----------------------------------------------------------------------------- the oracle


def true_probability_of_default(
    *,
    discipline: npt.ArrayLike,
    recent_stress: npt.ArrayLike,
    debt_service_ratio: npt.ArrayLike,
    loan_to_savings: npt.ArrayLike,
    bureau_listed: npt.ArrayLike,
    n_guarantors: npt.ArrayLike,
    tenure_months: npt.ArrayLike,
    employment_type: npt.ArrayLike,
    thin_file: npt.ArrayLike,
) -> FloatArray:
    """The 12-month PD; it takes no protected attribute (gender, age) and no county, by design."""
    emp = pd.Categorical(np.asarray(employment_type), categories=EMPLOYMENT_TYPES).codes
    if (emp < 0).any():
        raise ValueError(f"employment_type must be one of {EMPLOYMENT_TYPES}")
    logit = (
        -2.7
        - 0.85 * np.asarray(discipline, dtype=float)
        + 0.85 * np.asarray(recent_stress, dtype=float)
        + 1.6 * (np.clip(np.asarray(debt_service_ratio, dtype=float), 0.0, 2.0) - 0.4)
        + 0.35 * np.log(np.clip(np.asarray(loan_to_savings, dtype=float), 0.05, 50.0))
        + 0.9 * np.asarray(bureau_listed, dtype=float)
        - 0.12 * np.asarray(n_guarantors, dtype=float)
        - 0.15 * np.log1p(np.asarray(tenure_months, dtype=float) / 12.0)
        + _EMPLOYMENT_RISK[emp]
        + 0.35 * np.asarray(thin_file, dtype=float)
    )
    return 1.0 / (1.0 + np.exp(-logit))


PD_INPUTS = tuple(inspect.signature(true_probability_of_default).parameters)


# ----------------------------------------------------------------------------- the world


@dataclass(eq=False)
class World:
    """The generated tables; `oracle` holds the PD inputs (latents) and is never a model input."""

    members: pd.DataFrame
    applications: pd.DataFrame
    profile_snapshots: pd.DataFrame
    repayments: pd.DataFrame
    mobile_money: pd.DataFrame
    seed: int
    oracle: pd.DataFrame = field(default_factory=pd.DataFrame)

    TABLES: ClassVar[tuple[str, ...]] = (
        "members",
        "applications",
        "profile_snapshots",
        "repayments",
        "mobile_money",
        "oracle",
    )

    def tables(self) -> dict[str, pd.DataFrame]:
        return {name: getattr(self, name) for name in self.TABLES}

    def save(self, folder: Path) -> None:
        """One parquet per table plus world.json (seed, size, row counts, fingerprint)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, table in self.tables().items():
            table.to_parquet(folder / f"{name}.parquet", index=False)
        meta = {
            "seed": self.seed,
            "n_members": len(self.members),
            "rows": {name: len(table) for name, table in self.tables().items()},
            "fingerprint": self.fingerprint(),
        }
        (folder / "world.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> World:
        folder = Path(folder)
        meta = json.loads((folder / "world.json").read_text())
        tables = {
            name: pd.read_parquet(folder / f"{name}.parquet")
            for name in cls.TABLES
            if (folder / f"{name}.parquet").exists() or name != "oracle"
        }
        return cls(seed=int(meta["seed"]), **tables)

    def fingerprint(self, significant: int | None = None) -> str:
        """sha256 over every table's columns, dtypes and values; survives a save/load.

        With `significant`, floating-point columns count to that many significant digits: the
        same world drawn on another CPU can differ in the last bits of a float (NumPy picks its
        vector kernels for exp and log by CPU; AVX-512 ones are the likely cause here), so a
        golden value meant to hold across machines needs this; a cache key on one machine
        does not."""
        digest = hashlib.sha256()
        for name, table in self.tables().items():
            digest.update(name.encode())
            for column in table.columns:
                digest.update(f"{column}:{table[column].dtype}".encode())
            if len(table):
                if significant is not None:
                    table = _rounded_floats(table, significant)
                hashes = pd.util.hash_pandas_object(table, index=False)
                digest.update(hashes.to_numpy().tobytes())
        return digest.hexdigest()


def _rounded_floats(table: pd.DataFrame, significant: int) -> pd.DataFrame:
    """The table with each float column as text to `significant` digits (correctly rounded)."""
    floats = [c for c in table.columns if pd.api.types.is_float_dtype(table[c].dtype)]
    if not floats:
        return table
    pattern = f"{{:.{significant - 1}e}}"
    return table.assign(**{c: table[c].map(pattern.format) for c in floats})


# ----------------------------------------------------------------------------- generation


@dataclass
class _Population:
    """Per-member arrays shared by the generation steps (index = member number - 1)."""

    n: int
    first: int  # global number of this part's first member, minus one (0 for a whole world)
    male: npt.NDArray[np.bool_]
    age: IntArray
    county: IntArray
    employment: IntArray
    income: FloatArray
    tenure: IntArray  # whole months from joining to the application month
    sacco: IntArray
    applied_ns: IntArray
    app_date: npt.NDArray[np.datetime64]  # day of the application
    app_month: IntArray  # months since 1970-01 of the application month
    discipline: FloatArray
    chronic_stress: FloatArray
    school_load: FloatArray
    stress: FloatArray = field(default_factory=lambda: np.empty(0))  # (n, months) from _K_MIN
    unemployed: npt.NDArray[np.bool_] = field(default_factory=lambda: np.empty(0, bool))


class _Steps:
    """A rich progress bar over the generation steps, or nothing."""

    def __init__(self, enabled: bool, total: int) -> None:
        self._progress: Any = None
        if enabled:
            from rich.progress import Progress

            self._progress = Progress()
            self._task = self._progress.add_task("world", total=total)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        if self._progress is not None:
            self._progress.update(self._task, description=name)
        yield
        if self._progress is not None:
            self._progress.advance(self._task)

    def __enter__(self) -> _Steps:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


#: A world larger than this is generated in parts of this many members, each part from its own
#: random stream (so memory stays bounded whatever the size); a smaller world is one part, drawn
#: exactly as before parts existed (the tiny and quick worlds are unchanged).
WORLD_PART_MEMBERS = 50_000


@dataclass(frozen=True)
class _Part:
    """Where a part sits in its world: its number, how many there are, its first member and
    first transaction (both as global numbers minus one)."""

    index: int = 0
    count: int = 1
    first_member: int = 0
    first_transaction: int = 0


def part_sizes(n_members: int, part_members: int | None = None) -> list[int]:
    """Members per part: as even as possible, none above `part_members` (default
    `WORLD_PART_MEMBERS`)."""
    part_members = part_members or WORLD_PART_MEMBERS
    if n_members < 1:
        raise ValueError("n_members must be positive")
    count = -(-n_members // part_members)
    base, extra = divmod(n_members, count)
    return [base + (i < extra) for i in range(count)]


def generate_world_parts(
    n_members: int,
    seed: int,
    *,
    part_members: int | None = None,
    progress: bool = False,
) -> Iterator[World]:
    """The world part by part (members 1.., then the next ones), for sizes that do not fit in
    memory at once. Parts share the counties' droughts and never share an id; one part is the
    whole world, exactly as `generate_world` draws it."""
    sizes = part_sizes(n_members, part_members)
    if len(sizes) == 1:
        yield _generate_part(np.random.default_rng(seed), n_members, seed, _Part(), None, progress)
        return
    climate = _draw_droughts(np.random.default_rng([seed, 0]), *_MONTH_RANGE)
    first_member, first_transaction = 0, 0
    for index, size in enumerate(sizes):
        part = _Part(index, len(sizes), first_member, first_transaction)
        world = _generate_part(
            np.random.default_rng([seed, index + 1]), size, seed, part, climate, progress
        )
        first_member += size
        first_transaction += len(world.mobile_money)
        yield world
        del world  # before the next part is drawn


def generate_world(
    n_members: int,
    seed: int,
    *,
    progress: bool = False,
    part_members: int | None = None,
) -> World:
    """Generate a world; the same (n_members, seed) always gives the same tables."""
    parts = list(
        generate_world_parts(n_members, seed, part_members=part_members, progress=progress)
    )
    return parts[0] if len(parts) == 1 else concat_worlds(parts)


def concat_worlds(parts: list[World]) -> World:
    """One world from its parts, member ids as one category set again."""
    tables = {
        name: pd.concat([getattr(p, name) for p in parts], ignore_index=True)
        for name in World.TABLES
    }
    ids = tables["members"]["member_id"].to_numpy()
    for name in ("profile_snapshots", "repayments", "mobile_money"):
        table = tables[name]
        table["member_id"] = pd.Categorical(table["member_id"].astype(object), categories=ids)
    loans = tables["repayments"]["loan_id"].astype(object)
    tables["repayments"]["loan_id"] = pd.Categorical(loans, categories=pd.unique(loans))
    return World(seed=parts[0].seed, **tables)


def _generate_part(
    rng: np.random.Generator,
    n_members: int,
    seed: int,
    part: _Part,
    climate: tuple[int, FloatArray] | None,
    progress: bool,
) -> World:
    with _Steps(progress, total=5) as steps:
        with steps.step("members"):
            pop = _draw_population(rng, n_members, part.first_member)
            members = _members_table(rng, pop, part)
        with steps.step("stress"):
            _simulate_stress(rng, pop, climate)
        with steps.step("repayments"):
            repayments, loans = _simulate_repayments(rng, pop, members)
        with steps.step("profiles and applications"):
            snapshots, applications, oracle = _simulate_profiles_and_applications(
                rng, pop, members, loans
            )
        with steps.step("mobile money"):
            mobile_money = _simulate_mobile_money(
                rng, pop, members, applications["default_12m"].to_numpy(), part.first_transaction
            )
    return World(
        members=members,
        applications=applications,
        profile_snapshots=snapshots,
        repayments=repayments,
        mobile_money=mobile_money,
        seed=seed,
        oracle=oracle,
    )


def _ids(prefix: str, numbers: npt.ArrayLike, width: int) -> npt.NDArray[np.str_]:
    digits = np.char.zfill(np.asarray(numbers).astype(str), width)
    return np.char.add(prefix, digits)


def _categorical(codes: npt.ArrayLike, categories: tuple[str, ...]) -> pd.Categorical:
    return pd.Categorical.from_codes(np.asarray(codes), categories=list(categories))


def _utc(ns: npt.ArrayLike) -> pd.DatetimeIndex:
    return pd.to_datetime(np.asarray(ns, dtype=np.int64), unit="ns", utc=True)


def _month_start_ns(month: npt.ArrayLike) -> IntArray:
    """Months since 1970-01 -> nanoseconds at 00:00 UTC on the first of that month."""
    days = np.asarray(month, dtype=np.int64).astype("M8[M]").astype("M8[D]").astype(np.int64)
    return days * _SECONDS_PER_DAY * _NS


def _days_in_month(month: npt.ArrayLike) -> IntArray:
    m = np.asarray(month, dtype=np.int64)
    return ((m + 1).astype("M8[M]").astype("M8[D]") - m.astype("M8[M]").astype("M8[D]")).astype(
        np.int64
    )


def _gumbel_choice(rng: np.random.Generator, logits: FloatArray) -> IntArray:
    """One categorical draw per row of `logits` (n, k), vectorised."""
    return np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)


def _draw_population(rng: np.random.Generator, n: int, first: int) -> _Population:
    weights = np.array([c[0] for c in COUNTIES.values()])
    urban = np.array([c[1] for c in COUNTIES.values()])
    county = rng.choice(len(COUNTIES), size=n, p=weights / weights.sum())
    male = rng.random(n) < 0.48
    age = np.clip(np.round(rng.gamma(3.2, 6.5, n) + 18.0), 18, 75).astype(np.int64)
    # Gender and age shape occupation and income mildly, as in Kenyan labour statistics.
    emp_logits = np.tile(np.array([0.1, 0.25, 0.0, -0.6]), (n, 1))
    emp_logits += np.where(male, 1.0, -1.0)[:, None] * np.array([0.08, -0.05, -0.05, 0.05])
    emp_logits += urban[county][:, None] * np.array([0.6, 0.4, -1.8, 0.3])
    emp_logits += (age < 25)[:, None] * np.array([-0.2, 0.0, -0.1, 0.3])
    employment = _gumbel_choice(rng, emp_logits)
    age_income = np.select([age < 25, age < 35, age < 55], [-0.08, 0.0, 0.05], -0.03)
    income = np.exp(
        np.log(_INCOME_MEDIAN[employment])
        + _INCOME_SIGMA[employment] * rng.standard_normal(n)
        + np.where(male, 0.03, -0.03)
        + age_income
        + 0.15 * urban[county]
    )
    income = np.round(np.clip(income, 4_000.0, 1_500_000.0), -2)
    max_tenure = (age - 18) * 12 + 6
    tenure = np.where(
        rng.random(n) < 0.09,
        rng.integers(1, 24, n),
        np.round(rng.gamma(2.0, 36.0, n)).astype(np.int64) + 24,
    )
    tenure = np.clip(tenure, 1, max_tenure).astype(np.int64)
    sacco = rng.choice(len(SACCO_IDS), size=n, p=np.linspace(1.6, 0.6, len(SACCO_IDS)) / 8.8)
    start = np.datetime64(f"{APPLICATION_YEAR}-01-01", "s").astype(np.int64)
    end = np.datetime64(f"{APPLICATION_YEAR + 1}-01-01", "s").astype(np.int64)
    applied_s = rng.integers(start, end, n)
    app_date = (applied_s // _SECONDS_PER_DAY).astype("M8[D]")
    app_month = app_date.astype("M8[M]").astype(np.int64)
    log_income_z = (np.log(income) - np.log(27_000.0)) / 0.6
    return _Population(
        n=n,
        first=first,
        male=male,
        age=age,
        county=county,
        employment=employment,
        income=income,
        tenure=tenure,
        sacco=sacco,
        applied_ns=applied_s * _NS,
        app_date=app_date,
        app_month=app_month,
        discipline=rng.standard_normal(n),
        chronic_stress=_STRESS_LEVEL[employment]
        - 0.2 * log_income_z
        + 0.45 * rng.standard_normal(n),
        school_load=np.where(rng.random(n) < 0.55, rng.uniform(0.2, 0.7, n), 0.0),
    )


def _members_table(rng: np.random.Generator, pop: _Population, part: _Part) -> pd.DataFrame:
    n = pop.n
    member_id = _ids("M", np.arange(pop.first + 1, pop.first + n + 1), 7)
    # part p of P draws from the numbers congruent to p modulo P: unique across parts
    national = (
        rng.choice(90_000_000 // part.count, size=n, replace=False) * part.count
        + part.index
        + 10_000_000
    )
    phone = rng.choice(100_000_000 // part.count, size=n, replace=False) * part.count + part.index
    joined_ns = _month_start_ns(pop.app_month - pop.tenure) + (
        rng.integers(0, 28, n) * _SECONDS_PER_DAY * _NS
    )
    band = np.searchsorted(np.array([25, 35, 45, 55]), pop.age, side="right")
    return pd.DataFrame(
        {
            "member_id": member_id.astype(object),
            "sacco_id": _categorical(pop.sacco, SACCO_IDS),
            "national_id": national.astype(str).astype(object),
            "phone_number": _ids("2547", phone, 8).astype(object),
            "gender": _categorical(pop.male.astype(np.int64), GENDERS),
            "age": pop.age,
            "age_band": _categorical(band, AGE_BANDS),
            "county": _categorical(pop.county, COUNTY_NAMES),
            "employment_type": _categorical(pop.employment, EMPLOYMENT_TYPES),
            "monthly_income_kes": pop.income,
            "joined_at": _utc(joined_ns),
        }
    )


def _draw_droughts(
    rng: np.random.Generator, first_abs: int, last_abs: int
) -> tuple[int, FloatArray]:
    """Drought months per county (1.0 in a drought) from month `first_abs` to `last_abs`."""
    proneness = np.array([c[2] for c in COUNTIES.values()])
    drought = np.zeros((len(COUNTIES), last_abs - first_abs + 1))
    for year_start in range(first_abs - 6, last_abs + 1, 12):
        hit = rng.random(len(COUNTIES)) < proneness
        begin = year_start + rng.integers(0, 12, len(COUNTIES))
        length = rng.integers(3, 7, len(COUNTIES))
        for c in np.flatnonzero(hit):
            lo, hi = max(begin[c] - first_abs, 0), max(begin[c] + length[c] - first_abs, 0)
            drought[c, lo:hi] = 1.0
    return first_abs, drought


#: Every month a world's stress can reach (months since 1970-01), for droughts shared by parts.
_MONTH_RANGE = (
    (APPLICATION_YEAR - 1970) * 12 + _K_MIN,
    (APPLICATION_YEAR - 1970) * 12 + 11 + _K_MAX,
)


def _simulate_stress(
    rng: np.random.Generator, pop: _Population, climate: tuple[int, FloatArray] | None
) -> None:
    """Monthly stress s = AR(1) + school fees + farm season + county drought + unemployment."""
    n, months = pop.n, _K_MAX - _K_MIN + 1
    if climate is None:  # a world in one part draws its droughts here, as it always has
        climate = _draw_droughts(
            rng, int(pop.app_month.min()) + _K_MIN, int(pop.app_month.max()) + _K_MAX
        )
    first_abs, drought = climate
    farmer = pop.employment == 2
    drought_weight = np.where(farmer, _DROUGHT_STRESS[1], _DROUGHT_STRESS[0])
    hazard = _JOB_LOSS_HAZARD[pop.employment]
    sd = _STRESS_NOISE / np.sqrt(1 - _RHO**2)
    ar = pop.chronic_stress + sd * rng.standard_normal(n)
    unemployed = np.zeros(n, dtype=bool)
    stress = np.empty((n, months))
    jobless = np.empty((n, months), dtype=bool)
    for j in range(months):
        ar = _RHO * ar + (1 - _RHO) * pop.chronic_stress + _STRESS_NOISE * rng.standard_normal(n)
        u = rng.random(n)
        unemployed = np.where(unemployed, u > 0.2, u < hazard)
        absolute = pop.app_month + _K_MIN + j
        moy = absolute % 12
        stress[:, j] = (
            ar
            + pop.school_load * np.isin(moy, _SCHOOL_MONTHS)
            + farmer * _FARM_SEASON[moy]
            + drought_weight * drought[pop.county, absolute - first_abs]
            + _UNEMPLOYED_STRESS * unemployed
        )
        jobless[:, j] = unemployed
    pop.stress, pop.unemployed = stress, jobless


def _stress_at(pop: _Population, k: int | IntArray) -> FloatArray:
    return pop.stress[np.arange(pop.n), np.asarray(k) - _K_MIN]


@dataclass
class _Loans:
    """Prior SACCO loans, per member and loan slot (n, slots)."""

    start: IntArray  # month offset of the first instalment
    term: IntArray
    instalment: FloatArray
    thin_file: npt.NDArray[np.bool_]


def _simulate_repayments(
    rng: np.random.Generator, pop: _Population, members: pd.DataFrame
) -> tuple[pd.DataFrame, _Loans]:
    """Instalments on back-to-back prior loans; lateness follows stress minus discipline."""
    n, slots = pop.n, 7
    wait = rng.integers(2, 9, n)
    first = np.maximum(-pop.tenure + wait, -HISTORY_MONTHS)
    recent_borrower = rng.random(n) < 0.03
    first = np.where(recent_borrower, np.maximum(first, -rng.integers(1, 25, n)), first)
    never = rng.random(n) < 0.05
    thin = never | (first > -1)
    terms = rng.choice(
        np.array([6, 12, 18, 24, 36]), size=(n, slots), p=[0.15, 0.35, 0.2, 0.2, 0.1]
    )
    start = np.empty((n, slots), dtype=np.int64)
    # A loan running at -24 began before the window.
    start[:, 0] = np.where(first == -HISTORY_MONTHS, first - rng.integers(0, terms[:, 0]), first)
    for j in range(1, slots):
        start[:, j] = start[:, j - 1] + terms[:, j - 1]
    valid = (start <= -1) & ~thin[:, None]
    start = np.where(valid, start, 10**6)
    principal = pop.income[:, None] * rng.uniform(1.5, 6.0, (n, slots)) * np.sqrt(terms / 12)
    instalment = np.round(principal * (1 + FLAT_INTEREST_PER_YEAR * terms / 12) / terms, 0)
    loans = _Loans(start=start, term=terms, instalment=instalment, thin_file=thin)

    ks = np.arange(-HISTORY_MONTHS, 0)
    active = (start[:, :, None] <= ks) & (ks < (start + terms)[:, :, None])  # (n, slots, 24)
    has_loan = active.any(axis=1) & (ks >= first[:, None])
    slot = np.argmax(active, axis=1)  # (n, 24)
    member_idx, col = np.nonzero(has_loan)
    k = ks[col]
    loan_slot = slot[member_idx, col]
    due = instalment[member_idx, loan_slot]
    stress = pop.stress[member_idx, k - _K_MIN]
    lateness = stress - 1.1 * pop.discipline[member_idx] + 0.35 * rng.standard_normal(len(k))
    over = lateness - 0.9
    month = pop.app_month[member_idx] + k
    due_day = rng.integers(1, 11, n)[member_idx]  # each member's instalments fall on one day
    last_day = _days_in_month(month)
    room = last_day - due_day  # days to month end, when the batch records what is unpaid
    days_late = np.where(over > 0, np.ceil(2.0 * np.exp(over)) - 1, 0).astype(np.int64)
    unpaid_by_month_end = days_late > room
    paid_fraction = np.where(unpaid_by_month_end, np.clip(1.0 - 0.5 * (over - 2.0), 0.0, 0.95), 1.0)
    days_late = np.minimum(days_late, room)
    due_ns = _month_start_ns(month) + (due_day - 1) * _SECONDS_PER_DAY * _NS
    settle_ns = rng.integers(6 * 3600, 20 * 3600, len(k)) * _NS
    batch_ns = (_month_start_ns(month + 1) - 3600 * _NS) + rng.integers(0, 3000, len(k)) * _NS
    recorded_ns = np.where(
        unpaid_by_month_end, batch_ns, due_ns + days_late * _SECONDS_PER_DAY * _NS + settle_ns
    )
    loan_codes = member_idx * slots + loan_slot
    used, loan_code = np.unique(loan_codes, return_inverse=True)
    loan_names = _ids("L", used // slots + 1 + pop.first, 7)
    loan_names = np.char.add(loan_names, _ids("", used % slots + 1, 2))
    repayments = pd.DataFrame(
        {
            "member_id": pd.Categorical.from_codes(
                member_idx, categories=members["member_id"].to_numpy()
            ),
            "loan_id": pd.Categorical.from_codes(loan_code, categories=loan_names),
            "month_offset": k.astype(np.int64),
            "due_date": _utc(due_ns),
            "amount_due_kes": due,
            "amount_paid_kes": np.round(due * paid_fraction, 0),
            "days_late": days_late,
            "recorded_at": _utc(recorded_ns),
        }
    )
    return repayments, loans


def _simulate_profiles_and_applications(
    rng: np.random.Generator, pop: _Population, members: pd.DataFrame, loans: _Loans
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Monthly profile snapshots, the application, its true PD and the drawn label."""
    n = pop.n
    d = pop.discipline
    save_rate = 0.04 * np.exp(0.35 * d + 0.05 * rng.standard_normal(n))
    share_target = rng.choice(np.array([5_000.0, 10_000.0, 20_000.0]), n)
    guarantors = rng.poisson(
        np.clip(0.6 + 0.25 * d + 0.02 * np.minimum(pop.tenure, 120) / 12, 0.1, None)
    )
    guarantors = np.minimum(guarantors, 6)
    hist_stress = pop.stress[:, -HISTORY_MONTHS - _K_MIN - 6 : -6 - _K_MIN].mean(axis=1)
    p_listed = 1 / (1 + np.exp(-(-3.3 - 0.9 * d + 1.0 * hist_stress)))
    listed = rng.random(n) < p_listed
    first_k = SNAPSHOT_MONTHS[0]
    months_saved = np.maximum(pop.tenure + first_k, 0)
    deposits = pop.income * save_rate * months_saved * rng.uniform(0.6, 1.0, n)
    external = rng.poisson(0.2 * np.exp(0.5 * np.clip(_stress_at(pop, first_k - 1), -2, 3)))

    # The application itself: drawn before the snapshots so post-application months can react.
    recent_stress = pop.stress[:, -3 - _K_MIN : -_K_MIN].mean(axis=1)
    app_moy = pop.app_month % 12
    product_logits = np.tile(np.log([0.3, 0.18, 0.14, 0.2, 0.18]), (n, 1))
    product_logits[:, 1] += 0.5 * recent_stress
    product_logits[:, 2] += (
        1.2 * np.isin(app_moy, (11, 0, 3, 4, 7, 8)) + 1.5 * (pop.school_load > 0) - 1.0
    )
    product_logits[:, 3] += 0.8 * (pop.employment == 1)
    product = _gumbel_choice(rng, product_logits)

    rows: list[pd.DataFrame] = []
    snapshot_at_app: dict[str, Any] = {}
    state: dict[str, Any] = {}
    labels: IntArray | None = None
    for k in SNAPSHOT_MONTHS:
        s_prev = _stress_at(pop, k - 1)
        if labels is not None and k >= 2:  # defaulters' finances sour after the application
            s_prev = s_prev + 0.8 * labels
        if k > first_k:
            contribution = pop.income * save_rate * np.exp(-0.5 * np.clip(s_prev, -1, 3))
            withdrawal = deposits * 0.06 * np.clip(s_prev - 0.8, 0, 2)
            deposits = np.maximum(deposits + (months_saved > 0) * contribution - withdrawal, 0)
            months_saved = months_saved + 1
            new_listing = rng.random(n) < 1 / (1 + np.exp(-(-5.6 + 1.2 * s_prev - 0.5 * d)))
            delisted = rng.random(n) < 0.03
            listed = (listed & ~delisted) | new_listing
            external = np.where(
                rng.random(n) < 0.25,
                rng.poisson(0.2 * np.exp(0.5 * np.clip(s_prev, -2, 3))),
                external,
            )
        if labels is not None and k >= 2:  # defaulters' arrears reach the bureau (a leakage trap)
            listed = listed | ((labels == 1) & (rng.random(n) < 0.35))
        tenure_k = pop.tenure + k
        share = np.minimum(share_target, 500.0 * np.maximum(tenure_k + 1, 0))
        running = (loans.start <= k) & (k < loans.start + loans.term)
        sacco_balance = (running * loans.instalment * (loans.start + loans.term - k)).sum(axis=1)
        existing_loans = running.sum(axis=1) + external
        balance = sacco_balance + external * np.round(0.15 * pop.income, -2)
        income_k = np.round(pop.income * 1.004**k, -2)
        snap = {
            "tenure_months": tenure_k,
            "deposits_kes": np.round(deposits, 0),
            "share_capital_kes": share,
            "n_guarantors": guarantors,
            "existing_loans": existing_loans.astype(np.int64),
            "existing_loan_balance_kes": balance,
            "bureau_listed": listed.astype(np.int64),
            "monthly_income_kes": income_k,
        }
        if k == 0:
            snapshot_at_app = dict(snap)
            state = _draw_application(rng, pop, product, snap, recent_stress, loans.thin_file)
            labels = state["default_12m"]
        keep = tenure_k >= 1  # the first snapshot after joining
        rows.append(
            pd.DataFrame(
                {
                    "member_idx": np.flatnonzero(keep),
                    "snapshot_at": _month_start_ns(pop.app_month + k)[keep],
                    **{name: np.asarray(v)[keep] for name, v in snap.items()},
                    "employment_type": pop.employment[keep],
                }
            )
        )
    snaps = pd.concat(rows, ignore_index=True).sort_values(
        ["member_idx", "snapshot_at"], kind="stable"
    )
    snapshots = pd.DataFrame(
        {
            "member_id": pd.Categorical.from_codes(
                snaps["member_idx"].to_numpy(), categories=members["member_id"].to_numpy()
            ),
            "snapshot_at": _utc(snaps["snapshot_at"].to_numpy()),
            **{name: snaps[name].to_numpy() for name in snapshot_at_app},
            "employment_type": _categorical(snaps["employment_type"].to_numpy(), EMPLOYMENT_TYPES),
        }
    )
    for name in ("tenure_months", "n_guarantors", "existing_loans", "bureau_listed"):
        snapshots[name] = snapshots[name].astype(np.int64)
    for name in (
        "deposits_kes",
        "share_capital_kes",
        "existing_loan_balance_kes",
        "monthly_income_kes",
    ):
        snapshots[name] = snapshots[name].astype(np.float64)

    applications = pd.DataFrame(
        {
            "application_id": _ids("A", np.arange(pop.first + 1, pop.first + n + 1), 7).astype(
                object
            ),
            "member_id": members["member_id"].to_numpy(),
            "sacco_id": members["sacco_id"].array,
            "applied_at": _utc(pop.applied_ns),
            "product": _categorical(product, PRODUCTS),
            "amount_kes": state["amount"],
            "term_months": state["term"],
            "channel": _categorical(state["channel"], CHANNELS),
            "declared_monthly_income_kes": state["declared_income"],
            "true_pd": state["true_pd"],
            "default_12m": state["default_12m"],
        }
    )
    oracle = pd.DataFrame({"member_id": members["member_id"].to_numpy(), **state["pd_inputs"]})
    oracle["chronic_stress"] = pop.chronic_stress
    return snapshots.reset_index(drop=True), applications, oracle


def _draw_application(
    rng: np.random.Generator,
    pop: _Population,
    product: IntArray,
    snap: dict[str, Any],
    recent_stress: FloatArray,
    thin_file: npt.NDArray[np.bool_],
) -> dict[str, Any]:
    """Loan terms follow SACCO practice (a multiple of savings); then the PD and the label."""
    n = pop.n
    savings = snap["deposits_kes"] + snap["share_capital_kes"]
    inflated = rng.random(n) < 0.12 + 0.1 * (recent_stress > 1.0)
    declared = snap["monthly_income_kes"] * np.exp(0.08 * rng.standard_normal(n))
    declared = np.round(declared * np.where(inflated, rng.uniform(1.2, 2.0, n), 1.0), -2)
    multiple_mean = np.array([2.5, 0.7, 1.2, 2.2, 2.0])[product]
    multiple = multiple_mean * np.exp(0.45 * rng.standard_normal(n) - 0.1)
    amount = np.maximum(savings * multiple, 0.4 * pop.income * np.exp(0.3 * rng.standard_normal(n)))
    amount = np.clip(np.round(amount / 500.0) * 500.0, 3_000.0, 5_000_000.0)
    term_choices = np.array(
        [[12, 24, 36, 48], [3, 6, 9, 12], [4, 6, 9, 12], [6, 12, 24, 36], [12, 18, 24, 36]]
    )
    term = term_choices[product, rng.integers(0, 4, n)].astype(np.int64)
    # SACCO affordability rule on the declared income: instalments up to 60% of it.
    room = np.maximum(0.6 * declared - snap["existing_loan_balance_kes"] / 12, 0.15 * declared)
    affordable = room * term / (1 + FLAT_INTEREST_PER_YEAR * term / 12)
    amount = np.clip(np.floor(np.minimum(amount, affordable) / 500.0) * 500.0, 3_000.0, None)
    channel_logits = np.tile(np.log([0.35, 0.3, 0.25, 0.1]), (n, 1))
    channel_logits[:, 1] += 0.6 * (pop.age < 35)
    channel_logits[:, 0] += 0.6 * (pop.age >= 55)
    channel = _gumbel_choice(rng, channel_logits)
    instalment = amount * (1 + FLAT_INTEREST_PER_YEAR * term / 12) / term
    pd_inputs = {
        "discipline": pop.discipline,
        "recent_stress": recent_stress,
        "debt_service_ratio": (instalment + snap["existing_loan_balance_kes"] / 12)
        / snap["monthly_income_kes"],
        "loan_to_savings": amount / np.maximum(savings, 1.0),
        "bureau_listed": np.asarray(snap["bureau_listed"], dtype=np.int64),
        "n_guarantors": np.asarray(snap["n_guarantors"], dtype=np.int64),
        "tenure_months": np.asarray(snap["tenure_months"], dtype=np.int64),
        "employment_type": _categorical(pop.employment, EMPLOYMENT_TYPES),
        "thin_file": thin_file.astype(np.int64),
    }
    true_pd = true_probability_of_default(**pd_inputs)
    return {
        "amount": amount,
        "term": term,
        "channel": channel,
        "declared_income": declared,
        "true_pd": true_pd,
        "default_12m": (rng.random(n) < true_pd).astype(np.int64),
        "pd_inputs": pd_inputs,
    }


def _simulate_mobile_money(
    rng: np.random.Generator,
    pop: _Population,
    members: pd.DataFrame,
    default_12m: IntArray,
    first_transaction: int = 0,
) -> pd.DataFrame:
    """Daily wallet flows from 91 days before to 30 days after the application.

    The wallet position W (balance minus overdraft debt) is tracked per member; spending adapts
    to W, so stress (less income) drives W below zero, which appears as overdraft draws.
    """
    n = pop.n
    d, emp = pop.discipline, pop.employment
    salaried = emp == 0
    share = np.clip(np.exp(np.log(0.65) + 0.07 * rng.standard_normal(n)), 0.2, 0.95)
    monthly = share * pop.income
    salary_share = np.where(salaried, 0.75, 0.0)
    payday = rng.integers(25, 29, n)
    in_rate = _INFLOW_RATE[emp] * np.exp(0.2 * rng.standard_normal(n))
    out_rate = _OUTFLOW_RATE[emp] * np.exp(0.2 * rng.standard_normal(n))
    airtime_rate = 0.22 * np.exp(0.3 * rng.standard_normal(n))
    airtime_mean = 60.0 * (pop.income / 30_000.0) ** 0.3
    bill_rate = 0.07 * np.exp(0.3 * d + 0.2 * rng.standard_normal(n))
    bill_mean = 0.04 * pop.income
    bet_taste = rng.standard_normal(n)
    bet_mean = 150.0 * (pop.income / 30_000.0) ** 0.5 * np.exp(0.3 * bet_taste)
    spend = 0.96 * np.exp(0.03 * rng.standard_normal(n))
    target = monthly * 0.9 * np.exp(0.3 * d)
    app_day = pop.app_date.astype(np.int64)
    app_second = (pop.applied_ns // _NS) - app_day * _SECONDS_PER_DAY
    members_idx = np.arange(n)
    signs = np.array([1.0, 1.0, -1.0, -1.0, -1.0, -1.0, -1.0])

    def flows(t: int, wallet: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Expected count and mean amount per member and source on day t."""
        day = (app_day + t).astype("M8[D]")
        month = day.astype("M8[M]")
        dom = (day - month.astype("M8[D]")).astype(np.int64) + 1
        k = month.astype(np.int64) - pop.app_month
        moy = month.astype(np.int64) % 12
        stress = pop.stress[members_idx, k - _K_MIN] + (t >= 1) * 0.8 * default_12m
        jobless = pop.unemployed[members_idx, k - _K_MIN]
        earned = monthly * np.exp(-0.6 * stress)
        feedback = np.clip(np.exp(1.5 * (wallet - target) / monthly), 0.1, 2.0)
        school_day = np.isin(moy, _SCHOOL_MONTHS) & (dom <= 15) & (pop.school_load > 0)
        rates = np.stack(
            [
                in_rate,
                salaried & (dom == payday) & ~jobless,
                out_rate,
                airtime_rate,
                bill_rate,
                school_day * 0.12,
                0.25 * np.exp(-1.0 * d + 0.5 * bet_taste - 1.7 + 0.3 * stress),
            ],
            axis=1,
        )
        # Everyday spending follows income half-way; airtime, bills and bets come out of it.
        budget = monthly * spend * (0.5 + 0.5 * np.exp(-0.6 * stress)) / 30.0
        other = airtime_rate * airtime_mean + bill_rate * bill_mean + rates[:, 6] * bet_mean
        means = np.stack(
            [
                earned * (1 - salary_share) / 30.0 / in_rate,
                earned * salary_share,
                np.maximum(budget - other, 0.2 * budget) * feedback / out_rate,
                airtime_mean,
                bill_mean,
                pop.school_load * pop.income * 0.7,
                bet_mean,
            ],
            axis=1,
        )
        return rates, means

    # Burn-in on expected flows, so the recorded window starts near each wallet's equilibrium.
    wallet = target * np.exp(0.3 * rng.standard_normal(n))
    for t in range(-MOBILE_MONEY_DAYS_BEFORE - 60, -MOBILE_MONEY_DAYS_BEFORE):
        rates, means = flows(t, wallet)
        wallet = wallet + (rates * means) @ signs
    wallet0 = np.round(wallet, 0)
    wallet = wallet0.copy()

    lo, hi = (
        -MOBILE_MONEY_DAYS_BEFORE * _SECONDS_PER_DAY,
        MOBILE_MONEY_DAYS_AFTER * _SECONDS_PER_DAY,
    )
    parts: list[list[Any]] = []
    for t in range(-MOBILE_MONEY_DAYS_BEFORE, MOBILE_MONEY_DAYS_AFTER + 1):
        rates, means = flows(t, wallet)
        counts = rng.poisson(rates)
        counts[:, 1] = rates[:, 1].astype(np.int64)  # salary: exactly once on payday
        flat = counts.ravel()
        who = np.repeat(np.repeat(members_idx.astype(np.int32), 7), flat)
        source = np.repeat(np.tile(np.arange(7, dtype=np.int8), n), flat)
        mean = np.repeat(means.ravel(), flat)
        sigma = _AMOUNT_SIGMA[source]
        amount = np.maximum(
            np.round(mean * np.exp(sigma * rng.standard_normal(len(who)) - sigma**2 / 2)), 1.0
        )
        second = rng.integers(0, _SECONDS_PER_DAY, len(who))
        offset = (t * _SECONDS_PER_DAY + second - app_second[who]).astype(np.int32)
        keep = (offset >= lo) & (offset < hi)
        who, amount, offset = who[keep], amount[keep], offset[keep]
        kind = _SOURCE_KIND[source[keep]]
        wallet += np.bincount(who, weights=np.where(kind == 0, amount, -amount), minlength=n)
        day_order = np.lexsort((offset, who))
        parts.append([who[day_order], offset[day_order], kind[day_order], amount[day_order]])

    # Days are in order and each day is sorted by member, so a stable sort by member suffices.
    columns: list[npt.NDArray[Any]] = []
    by_member: IntArray | None = None
    for i in range(4):  # one column at a time, freeing the day parts as we go
        column = np.concatenate([part[i] for part in parts])
        for part in parts:
            part[i] = None
        if by_member is None:
            by_member = np.argsort(column, kind="stable")
        columns.append(column[by_member])
    del parts, by_member
    who, offset, kind, amount = columns
    return _mobile_money_table(pop, members, wallet0, who, offset, kind, amount, first_transaction)


def _mobile_money_table(
    pop: _Population,
    members: pd.DataFrame,
    wallet0: FloatArray,
    who: npt.NDArray[np.int32],
    offset: npt.NDArray[np.int32],
    kind: npt.NDArray[np.int8],
    amount: FloatArray,
    first_transaction: int,
) -> pd.DataFrame:
    """Insert overdraft draws/repays where the wallet position crosses zero; balances never < 0.

    The position W = balance - overdraft debt; the balance is max(W, 0) and the debt max(-W, 0),
    so an outflow that takes W below zero is funded by a draw, and an inflow repays debt first.
    """
    inflow = kind == 0
    position = np.where(inflow, amount, -amount)
    np.cumsum(position, out=position)
    starts = np.searchsorted(who, np.arange(pop.n))
    before = np.concatenate([[0.0], position])[starts] - wallet0
    position -= before[who]
    del before
    previous = position - np.where(inflow, amount, -amount)
    has_draw = ~inflow & (position < 0)
    has_repay = inflow & (previous < 0)
    n_rows = len(who)
    at = np.cumsum(has_draw) + np.cumsum(has_repay) - has_repay + np.arange(n_rows)
    total = n_rows + int(has_draw.sum()) + int(has_repay.sum())

    out_who = np.empty(total, dtype=np.int32)
    out_offset = np.empty(total, dtype=np.int32)
    out_kind = np.empty(total, dtype=np.int8)
    out_amount = np.empty(total)
    out_balance = np.empty(total)
    out_who[at], out_offset[at], out_kind[at], out_amount[at] = who, offset, kind, amount
    out_balance[at] = np.where(inflow, np.maximum(previous, 0) + amount, np.maximum(position, 0))
    idx = np.flatnonzero(has_draw)
    draw = np.maximum(-position[idx], 0) - np.maximum(-previous[idx], 0)
    out_who[at[idx] - 1], out_offset[at[idx] - 1], out_kind[at[idx] - 1] = who[idx], offset[idx], 5
    out_amount[at[idx] - 1] = draw
    out_balance[at[idx] - 1] = np.maximum(previous[idx], 0) + draw
    idx = np.flatnonzero(has_repay)
    repay = np.maximum(-previous[idx], 0) - np.maximum(-position[idx], 0)
    out_who[at[idx] + 1], out_offset[at[idx] + 1], out_kind[at[idx] + 1] = who[idx], offset[idx], 6
    out_amount[at[idx] + 1] = repay
    out_balance[at[idx] + 1] = np.maximum(position[idx], 0)
    del position, previous, at, who, offset, kind, amount
    occurred = pop.applied_ns[out_who]
    occurred += out_offset.astype(np.int64) * _NS
    del out_offset
    return pd.DataFrame(
        {
            "transaction_id": np.arange(
                first_transaction + 1, first_transaction + total + 1, dtype=np.int64
            ),
            "member_id": pd.Categorical.from_codes(
                out_who, categories=members["member_id"].to_numpy()
            ),
            "occurred_at": _utc(occurred),
            "kind": _categorical(out_kind, TRANSACTION_KINDS),
            "amount_kes": out_amount,
            "balance_kes": out_balance,
        },
        copy=False,
    )
