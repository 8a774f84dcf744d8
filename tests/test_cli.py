"""The lesionbn command line: output, JSON, and exit codes (0 ok, 2 bad input, message on stderr)."""
import json

import pytest

from helpers import example_model_path
from model.cli import main

ASIA = example_model_path("asia")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_posterior_table_and_json(capsys):
    code, out, err = run(capsys, "posterior", "--network", ASIA, "-e", "smoke=yes", "--target", "lung")
    assert code == 0 and err == ""
    assert "lung" in out and "evidence: smoke=yes" in out
    code, out, _ = run(capsys, "posterior", "--network", ASIA, "-e", "smoke=yes", "--target", "lung", "--json")
    data = json.loads(out)
    assert data["evidence"] == {"smoke": "yes"}
    assert data["posterior"]["lung"]["yes"] == pytest.approx(0.1)


def test_soft_evidence_on_the_command_line(capsys):
    code, out, _ = run(capsys, "posterior", "--network", ASIA, "-e", "xray=yes:0.8,no:0.2", "--json", "-t", "lung")
    assert code == 0
    assert json.loads(out)["evidence"] == {"xray": {"yes": 0.8, "no": 0.2}}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["posterior", "-e", "smok=yes"], "Did you mean 'smoke'"),
        (["posterior", "-e", "smoke=maybe"], "not a state of 'smoke'"),
        (["posterior", "-e", "smoke"], "must look like VARIABLE=STATE"),
        (["posterior", "-e", "tub=yes", "either=no"], "probability zero"),
        (["posterior", "-e", "xray=yes:abc"], "not a number"),
    ],
)
def test_bad_input_exits_2_with_message_on_stderr(capsys, argv, message):
    code, out, err = run(capsys, *argv, "--network", ASIA)
    assert code == 2
    assert out == ""
    assert message in err and err.startswith("lesionbn: error:")


def test_missing_network_file_exits_2(capsys):
    code, _, err = run(capsys, "describe", "--network", "/nonexistent.bif")
    assert code == 2 and "not found" in err


def test_describe(capsys):
    code, out, _ = run(capsys, "describe", "--network", ASIA)
    assert code == 0 and "either" in out and "states: yes, no" in out
    code, out, _ = run(capsys, "describe", "--network", ASIA, "--json")
    assert {v["variable"] for v in json.loads(out)["variables"]} >= {"asia", "dysp"}


def test_export_round_trip(capsys, tmp_path):
    out_file = tmp_path / "asia.xmlbif"
    code, out, _ = run(capsys, "export", "--network", ASIA, str(out_file))
    assert code == 0 and out_file.exists()
    code, out, _ = run(capsys, "posterior", "--network", str(out_file), "-e", "smoke=yes", "-t", "lung", "--json")
    assert json.loads(out)["posterior"]["lung"]["yes"] == pytest.approx(0.1, abs=1e-9)


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["posterior", "--no-such-flag"])
    assert exc.value.code == 2


def test_console_script_is_installed():
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "lesionbn"
    assert exe.exists() or shutil.which("lesionbn"), "the lesionbn console script is not installed"
    proc = subprocess.run([str(exe), "posterior", "--network", ASIA, "-e", "smok=yes"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Did you mean 'smoke'" in proc.stderr


def test_posterior_of_a_case_file(capsys, tmp_path):
    import numpy as np
    import pandas as pd

    from model import load_network

    net = load_network()
    cases = tmp_path / "cases.csv"
    pd.DataFrame({"case_id": ["a", "b", "c"], "babinski": ["present", "", "absent"],
                  "fasciculations": ["", "present", "present"],
                  "disease": ["stroke", "", "als"]}).to_csv(cases, index=False)
    out = tmp_path / "post.csv"
    code, stdout, _ = run(capsys, "posterior", "--cases", str(cases), "--out", str(out),
                          "-t", "lesion_type", "disease", "--findings-only", "--quiet")
    assert code == 0 and "wrote posteriors of 3 cases" in stdout
    table = pd.read_csv(out).set_index("case_id")
    assert list(table.columns[:3]) == ["possible", "log_evidence", "lesion_type"]
    findings = {"a": {"babinski": "present"}, "b": {"fasciculations": "present"},
                "c": {"babinski": "absent", "fasciculations": "present"}}
    for cid, ev in findings.items():
        post = net.posterior(ev, targets=["lesion_type", "disease"])  # the label is ignored
        for t in ("lesion_type", "disease"):
            assert table.loc[cid, t] == post[t].idxmax()
            got = table.loc[cid, [f"{t}={s}" for s in net.states[t]]].to_numpy(dtype=float)
            np.testing.assert_allclose(got, post[t].to_numpy(), atol=1e-9)
    # without --findings-only the label is evidence; without --out the table goes to stdout
    code, stdout, _ = run(capsys, "posterior", "--cases", str(cases), "-t", "disease", "--quiet")
    table = pd.read_csv(__import__("io").StringIO(stdout)).set_index("case_id")
    assert code == 0 and table.loc["a", "disease=stroke"] == 1.0
    assert table.loc["b", "disease"] == net.posterior(findings["b"], targets="disease")["disease"].idxmax()


def test_posterior_of_a_case_file_reports_bad_cells(capsys, tmp_path):
    cases = tmp_path / "cases.csv"
    cases.write_text("smoke,xray\nyes,maybe\n")
    code, _, err = run(capsys, "posterior", "--network", ASIA, "--cases", str(cases), "--quiet")
    assert code == 2 and "maybe" in err and "xray" in err
    code, _, err = run(capsys, "posterior", "--network", ASIA, "--out", "x.csv")
    assert code == 2 and "--cases" in err
