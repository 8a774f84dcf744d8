"""The knowledge-file loader: every kind of mistake gets a clear error naming where it is."""
import textwrap

import numpy as np
import pytest
import yaml

from model import ModelFileError, load_network
from model.knowledge import SUM_TOLERANCE, parse_knowledge, read_knowledge, to_pgmpy
from model.knowledge_write import write_knowledge

GOOD = textwrap.dedent(
    """
    format: lesionbn-knowledge/1
    name: tiny
    version: 0.0.1
    sources:
      S1: "A study"
    tests:
      - {name: look, variables: [b], cost: 2, source: expert estimate}
    groups:
      - {name: Findings, variables: [b, c]}
    variables:
      a:
        role: latent
        description: the hidden cause
        states: [x, y]
        cpt:
          - p: {x: 0.3, y: 0.7}
            source: S1
      b:
        states: ["yes", "no", maybe]
        parents: [a]
        cpt:
          - p: {"yes": 0.5, others: 0.5}
            source: expert estimate
          - when: {a: y}
            p: [0.1, 0.2, 0.7]
            source: [S1, expert estimate]
      c:
        states: [lo, hi]
        parents: [a, b]
        cpt:
          - p: {lo: 0.9, hi: 0.1}
            source: expert estimate
          - when: {b: ["yes", maybe]}
            p: {lo: 0.2, hi: 0.8}
            source: S1
    """
)


def doc(**edits):
    d = yaml.load(GOOD, Loader=__import__("model.knowledge", fromlist=["_Loader"])._Loader)
    for path, value in edits.items():
        node = d
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        last = keys[-1]
        if value is DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return d


DELETE = object()


def problems_of(d):
    with pytest.raises(ModelFileError) as exc:
        parse_knowledge(d, origin="test.yaml")
    return str(exc.value)


def test_good_file_compiles_with_overrides_and_others():
    kb = parse_knowledge(doc())
    tables = kb.tables()
    # default row for a=x, override for a=y; 'others' spreads 0.5 over the two unlisted states
    np.testing.assert_allclose(tables["b"][:, 0], [0.5, 0.25, 0.25])
    np.testing.assert_allclose(tables["b"][:, 1], [0.1, 0.2, 0.7])
    # list in `when` matches both yes and maybe, whatever a is
    assert tables["c"].shape == (2, 2, 3)
    np.testing.assert_allclose(tables["c"][:, 1, 0], [0.2, 0.8])
    np.testing.assert_allclose(tables["c"][:, 0, 1], [0.9, 0.1])
    assert kb.row_sources("b") == [("expert estimate",), ("S1", "expert estimate")]
    assert kb.variables["b"].states == ("yes", "no", "maybe")  # yes/no stay strings
    to_pgmpy(kb).check_model()


def test_unknown_parent_suggests_closest():
    msg = problems_of(doc(variables__b__parents=["aa"]))
    assert "variable 'b': unknown parent 'aa'" in msg and "Did you mean 'a'" in msg


def test_cycle_is_reported_as_a_path():
    d = doc(variables__a__parents=["c"])
    msg = problems_of(d)
    assert "cycle" in msg and "a" in msg and "c" in msg


def test_undeclared_state_in_when_and_p():
    d = doc()
    d["variables"]["b"]["cpt"][1]["when"] = {"a": "z"}
    d["variables"]["c"]["cpt"][0]["p"] = {"low": 0.9, "hi": 0.1}
    msg = problems_of(d)
    assert "variable 'b', cpt rule 2: a='z' is not a declared state of 'a'" in msg
    assert "variable 'c', cpt rule 1: 'low' is not a declared state of 'c'" in msg
    assert "Did you mean 'lo'" in msg
    assert "2 problem(s)" in msg


def test_row_not_summing_to_one_names_rule_and_tolerance():
    d = doc()
    d["variables"]["a"]["cpt"][0]["p"] = {"x": 0.3, "y": 0.6}
    msg = problems_of(d)
    assert "variable 'a', cpt rule 1: probabilities sum to 0.9, not 1" in msg
    assert f"{SUM_TOLERANCE:g}" in msg


def test_within_tolerance_is_accepted():
    d = doc()
    d["variables"]["a"]["cpt"][0]["p"] = {"x": 0.3, "y": 0.7 + SUM_TOLERANCE / 2}
    parse_knowledge(d)


def test_missing_and_unknown_provenance():
    d = doc()
    del d["variables"]["a"]["cpt"][0]["source"]
    d["variables"]["c"]["cpt"][1]["source"] = "S9"
    msg = problems_of(d)
    assert "variable 'a', cpt rule 1: missing provenance" in msg
    assert "variable 'c', cpt rule 2: source 'S9' is neither a key of the sources table" in msg


def test_uncovered_parent_configuration():
    d = doc()
    d["variables"]["b"]["cpt"] = [d["variables"]["b"]["cpt"][1]]  # only the a=y rule
    msg = problems_of(d)
    assert "variable 'b': no cpt rule covers the parent configuration a=x" in msg


def test_when_on_a_non_parent_and_missing_state_probability():
    d = doc()
    d["variables"]["b"]["cpt"][1]["when"] = {"c": "lo"}
    d["variables"]["c"]["cpt"][0]["p"] = {"lo": 1.0}
    msg = problems_of(d)
    assert "'when' names 'c', which is not a parent of 'b'" in msg
    assert "no probability for 'hi'" in msg


def test_probability_out_of_range_and_non_numeric():
    d = doc()
    d["variables"]["a"]["cpt"][0]["p"] = {"x": 1.3, "y": -0.3}
    d["variables"]["b"]["cpt"][0]["p"] = {"yes": "half", "others": 0.5}
    msg = problems_of(d)
    assert "outside [0, 1]" in msg and "'half', not a number" in msg


def test_test_group_with_unknown_variable():
    d = doc()
    d["tests"][0]["variables"] = ["bb"]
    msg = problems_of(d)
    assert "test group 'look': unknown variable 'bb'" in msg


def test_bad_yaml_and_empty_file(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ModelFileError, match="empty"):
        read_knowledge(empty)
    bad = tmp_path / "bad.yaml"
    bad.write_text("variables: [unclosed\n")
    with pytest.raises(ModelFileError, match="not valid YAML"):
        read_knowledge(bad)
    with pytest.raises(ModelFileError, match="not found"):
        read_knowledge(tmp_path / "nope.yaml")


def test_write_then_read_round_trips(tmp_path):
    kb = parse_knowledge(doc())
    path = write_knowledge(kb, tmp_path / "out.yaml")
    kb2 = read_knowledge(path)
    for v in kb.variables:
        np.testing.assert_array_equal(kb.tables()[v], kb2.tables()[v])
        assert kb.row_sources(v) == kb2.row_sources(v)
    assert kb2.tests[0].cost == 2 and kb2.groups == kb.groups
    net = load_network(path)
    assert net.states["b"] == ["yes", "no", "maybe"]
