"""lesionbn app entry point: loads the network once, restores a shared case, and navigates.

Run with ``make app`` (``streamlit run app/streamlit_app.py``). Set ``LESIONBN_NETWORK`` to a
knowledge, BIF or XMLBIF file to open another network; any discrete network works.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app import resources, state  # noqa: E402
from app.components import DISCLAIMER  # noqa: E402
from app.views import diagnose, model_page  # noqa: E402
from model.errors import LesionBNError  # noqa: E402


timer = resources.Timer()
st.set_page_config(page_title="lesionbn: motor lesion explorer", page_icon=":material/neurology:", layout="wide")

# ----------------------------------------------------------------------------- network
choices = resources.network_choices()
with st.sidebar:
    st.markdown("### lesionbn")
    choice = st.selectbox(
        "Network",
        list(choices),
        key="network_choice",
        help="The default motor-lesion network, a file named by LESIONBN_NETWORK, or a generic example.",
    )
if not choices:
    st.error("No network available: the default network file is missing and pgmpy's examples were not found. "
             "Set LESIONBN_NETWORK to a knowledge, BIF or XMLBIF file.")
    st.stop()
net_key = choices[choice]
try:
    with st.spinner("Loading the network (once per server)..."):
        net = resources.get_network(net_key)
except (LesionBNError, OSError) as exc:
    st.error(f"The network could not be loaded: {exc}")
    st.caption(DISCLAIMER)
    st.stop()

session = st.session_state
state.init_session(session)
if session.get("network_key") != net_key:
    # a new session, or another network: start from an empty case
    first = "network_key" not in session
    session["network_key"] = net_key
    session[state.EVIDENCE] = {}
    session[state.PREVIOUS] = None
    session[state.LAST_CHANGE] = ""
    session[state.SAVED] = {}
    if first and len(st.query_params):
        # a shared link: restore its evidence (invalid entries are explained, never fatal)
        params = {k: st.query_params.get_all(k) for k in st.query_params.keys()}
        evidence, warnings = state.evidence_from_query(params, net.states, net.observable)
        evidence, more = state.drop_impossible(evidence, lambda e: resources.is_possible(net, e))
        if evidence:
            state.set_evidence(session, evidence, label="case restored from the link")
            session[state.PREVIOUS] = None
        for w in warnings + more:
            state.add_notice(session, w)
    elif not first:
        st.query_params.clear()


def page_diagnose():
    diagnose.render(net)


def page_model():
    model_page.render(net)


nav = st.navigation(
    [
        st.Page(page_diagnose, title="Diagnose", icon=":material/stethoscope:", url_path="diagnose", default=True),
        st.Page(page_model, title="Model", icon=":material/account_tree:", url_path="model"),
    ]
)
with st.sidebar:
    st.caption(f"Network: **{net.name}** {net.version}".strip())
nav.run()

session["_render_ms"] = timer.elapsed_ms()
