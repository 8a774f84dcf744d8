"""Case data: every validation error, the report, and simulation."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import example_model_path

from model import load_network
from model.cases import CASE_ID, bedside_tests, decode, encode, read_cases, recorded_mask, simulate, write_cases
from model.errors import CaseDataError


@pytest.fixture(scope="module")
def asia():
    return load_network(example_model_path("asia"))


@pytest.fixture(scope="module")
def default_net():
    return load_network()


def _raises(source, net, *fragments, **kw):
    with pytest.raises(CaseDataError) as exc:
        read_cases(source, net, **kw)
    msg = str(exc.value)
    for f in fragments:
        assert f in msg, f"{f!r} not in {msg!r}"
    return msg


def test_unknown_column_suggests_closest(asia):
    df = pd.DataFrame({"smoek": ["yes"], "dysp": ["no"]})
    _raises(df, asia, "column 'smoek'", "Did you mean 'smoke'")


def test_unknown_state_names_row_column_value_and_valid_states(asia):
    df = pd.DataFrame({"case_id": ["a", "b", "c"], "smoke": ["yes", "yess", ""]})
    msg = _raises(df, asia, "row 2", "case_id 'b'", "column 'smoke'", "'yess'", "valid: yes, no", "Did you mean 'yes'")
    assert "row 3" not in msg  # a blank is "not recorded", not an error


def test_every_problem_is_listed_at_once(asia):
    df = pd.DataFrame({"case_id": ["a", "a"], "smoke": ["maybe", "no"], "lugn": ["yes", "no"]})
    msg = _raises(df, asia, "3 problem(s)", "duplicate case_id", "'lugn'", "'maybe'")
    assert "rows 1, 2" in msg


def test_duplicate_case_ids(asia, tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("case_id,smoke\nx1,yes\nx2,no\nx1,no\n")
    _raises(path, asia, "duplicate case_id", "'x1' at rows 1, 3")


def test_empty_files(asia, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    _raises(empty, asia, "empty")
    header_only = tmp_path / "header.csv"
    header_only.write_text("smoke,dysp\n")
    _raises(header_only, asia, "empty")
    _raises(pd.DataFrame(), asia, "empty")


def test_column_with_no_valid_value(asia):
    _raises(pd.DataFrame({"smoke": ["yes", "no"], "tub": [None, "  "]}), asia, "column 'tub'", "no recorded value")
    _raises(pd.DataFrame({"smoke": ["yes", "no"], "tub": ["x", "y"]}), asia, "column 'tub'", "none of its 2 value")


def test_malformed_csv(asia, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text('smoke,dysp\nyes,no\n"no,yes\n')
    _raises(path, asia, "malformed CSV")
    path.write_text("smoke,dysp\nyes,no,yes,no\n")
    _raises(path, asia, "malformed CSV")


def test_wrong_file_types_and_pickles_are_refused(asia, tmp_path):
    pkl = tmp_path / "cases.pkl"
    pd.DataFrame({"smoke": ["yes"]}).to_pickle(pkl)
    _raises(pkl, asia, "unsupported file type", "never loaded")
    xlsx = tmp_path / "cases.xlsx"
    xlsx.write_bytes(b"PK\x03\x04")
    _raises(xlsx, asia, "unsupported file type '.xlsx'")
    binary = tmp_path / "cases.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01smoke")
    _raises(binary, asia, "UTF-8")
    _raises(tmp_path / "missing.csv", asia, "not found")
    _raises(tmp_path, asia, "folder")
    with pytest.raises(CaseDataError, match="path or a pandas DataFrame"):
        read_cases(42, asia)


def test_size_limit(asia, tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("smoke\n" + "yes\n" * 1000)
    _raises(path, asia, "over the size limit", max_bytes=100)


def test_report_counts_every_value(asia, tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("case_id,smoke,dysp\na, yes ,no\nb,,\nc,no,\n")
    data, report = read_cases(path, asia)
    assert list(data.columns) == ["case_id", "smoke", "dysp"]
    assert data.loc[0, "smoke"] == "yes"  # spaces trimmed and counted
    assert report.trimmed_values == 1
    assert report.n_rows == 3 and report.dropped_rows == 0 and report.dropped_values == 0
    assert report.empty_rows == 1
    m = report.missing.set_index("variable")
    assert m.loc["smoke", "recorded"] == 2 and m.loc["smoke", "missing"] == 1
    assert m.loc["dysp", "recorded"] == 1 and m.loc["dysp", "missing"] == 2
    assert set(report.absent_variables) == set(asia.variables) - {"smoke", "dysp"}
    assert "rows used: 3 of 3" in report.summary()
    # "NA" and "none" are not silently turned into blanks: they are checked as state names
    path.write_text("smoke\nNA\n")
    _raises(path, asia, "'NA' is not a state")


def test_parquet_round_trip(asia, tmp_path):
    pytest.importorskip("pyarrow")
    df = simulate(asia, 50, seed=3, missing=0.3)
    path = write_cases(df, tmp_path / "c.parquet")
    data, report = read_cases(path, asia)
    assert report.n_rows == 50
    pd.testing.assert_frame_equal(data.reset_index(drop=True), read_cases(df, asia)[0])


def test_encode_decode_round_trip(asia):
    df = simulate(asia, 200, seed=1, missing=0.4)
    data, _ = read_cases(df, asia)
    codes = encode(data, asia)
    back = decode(codes, asia, [c for c in data.columns if c != CASE_ID])
    for c in back.columns:
        assert (back[c].fillna("<na>") == data[c].fillna("<na>")).all()


def test_simulation_is_seeded_and_follows_the_network(asia):
    a = simulate(asia, 4000, seed=7, missing="none")
    b = simulate(asia, 4000, seed=7, missing="none")
    pd.testing.assert_frame_equal(a, b)
    assert a.drop(columns=CASE_ID).notna().all().all()
    # marginal of a root and a conditional frequency agree with the tables
    tables = asia.knowledge.tables()
    yes = asia.states["smoke"].index("yes")
    assert abs((a["smoke"] == "yes").mean() - tables["smoke"][yes]) < 0.03
    p_lung = tables["lung"][asia.states["lung"].index("yes"), yes]
    assert abs((a.loc[a["smoke"] == "yes", "lung"] == "yes").mean() - p_lung) < 0.03


def test_missing_rate(asia):
    df = simulate(asia, 3000, seed=2, missing=0.25)
    frac = df.drop(columns=CASE_ID).isna().to_numpy().mean()
    assert abs(frac - 0.25) < 0.02
    with pytest.raises(ValueError):
        simulate(asia, 10, missing=1.5)
    with pytest.raises(ValueError):
        simulate(asia, 10, missing="often")


def test_realistic_missingness_on_the_default_network(default_net):
    net = default_net
    bedside, investigations = bedside_tests(net)
    assert bedside and investigations
    # bedside tests are non-invasive and cheaper than every investigation that is non-invasive
    assert all(t.invasiveness == "none" for t in bedside)
    assert max(t.cost for t in bedside) < min(t.cost for t in investigations if t.invasiveness == "none")
    df = simulate(net, 2000, seed=0)
    for v in net.hidden:
        assert v not in df.columns  # latent and helper variables hidden
    rec = df.notna().mean()
    bed_vars = [v for t in bedside for v in t.variables]
    inv_vars = [v for t in investigations for v in t.variables]
    assert rec[bed_vars].min() > 0.8
    assert rec[inv_vars].max() < 0.7
    # the variables of one test are recorded together
    group = next(t for t in investigations if len(t.variables) > 1)
    sub = df[list(group.variables)].notna()
    assert (sub.sum(axis=1).isin([0, len(group.variables)]) | (sub.sum(axis=1) >= len(group.variables) - 2)).mean() > 0.97
    labelled = simulate(net, 100, seed=0, label_latent=True)
    for v in net.latent:
        assert labelled[v].notna().all()
    for v in set(net.hidden) - set(net.latent):
        assert v not in labelled.columns


def test_recorded_mask_none_and_labels(asia):
    rng = np.random.default_rng(0)
    mask = recorded_mask(asia, 10, rng, "none")
    assert mask.all()  # asia declares no roles: every variable visible
    with pytest.raises(ValueError):
        simulate(asia, 10, label_latent=["nonexistent"])
