"""BIF / XMLBIF import and export: round trips give the same posteriors; bad files give clear errors."""
import gzip

import numpy as np
import pytest

from helpers import example_model_path
from model import ModelFileError, load_network


@pytest.fixture(scope="module")
def asia():
    return load_network(example_model_path("asia"))


@pytest.mark.parametrize("suffix", [".bif", ".xmlbif", ".yaml"])
def test_export_then_load_gives_same_posteriors(asia, tmp_path, suffix):
    path = asia.export(tmp_path / f"asia{suffix}")
    again = load_network(path)
    assert again.states == asia.states
    ev = {"smoke": "yes", "dysp": "yes"}
    a, b = asia.posterior(ev), again.posterior(ev)
    for t in a:
        np.testing.assert_allclose(a[t].to_numpy(), b[t].to_numpy(), atol=1e-9)


def test_export_is_readable_by_pgmpy_directly(asia, tmp_path):
    from pgmpy.readwrite import BIFReader

    path = asia.export(tmp_path / "asia.bif")
    model = BIFReader(str(path)).get_model()
    model.check_model()


def test_tables_are_normalised_on_load(tmp_path):
    text = gzip.decompress(open(example_model_path("asia"), "rb").read()).decode()
    text = text.replace("table 0.01, 0.99;", "table 0.0100002, 0.99;")
    p = tmp_path / "asia_off.bif"
    p.write_text(text)
    net = load_network(p)
    np.testing.assert_allclose(net.knowledge.tables()["asia"].sum(), 1.0, atol=1e-15)
    assert "normalised" in net.knowledge.description


def test_bad_cpt_is_rejected_with_variable_name(tmp_path):
    text = gzip.decompress(open(example_model_path("asia"), "rb").read()).decode()
    p = tmp_path / "asia_bad.bif"
    p.write_text(text.replace("table 0.01, 0.99;", "table 0.5, 0.99;"))
    with pytest.raises(ModelFileError) as exc:
        load_network(p)
    assert "asia" in str(exc.value)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.bif", "", "empty"),
        ("junk.bif", "this is not a network {", "could not parse"),
        ("junk.xml", "<BIF><NETWORK><VARIABLE>", "could not parse"),
        ("net.csv", "a,b\n1,2\n", "unknown network file type"),
    ],
)
def test_malformed_files(tmp_path, name, content, message):
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(ModelFileError, match=message):
        load_network(p)


def test_missing_file():
    with pytest.raises(ModelFileError, match="not found"):
        load_network("/nonexistent/net.bif")
