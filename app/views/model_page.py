"""The model page: the network as a graph, each CPT with its provenance, sources and tests."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app import components as ui
from app import resources, state


def render(net) -> None:
    session = st.session_state
    evidence = session.get(state.EVIDENCE) or {}
    st.title(f"Model: {net.name}")
    st.caption(ui.DISCLAIMER)
    for notice in state.notices(session):
        st.warning(notice, icon=":material/info:")
    k = net.knowledge
    meta = f"Version **{net.version or 'unversioned'}** · {len(net.variables)} variables · " \
           f"{net.model.number_of_edges()} arrows · {len(net.latent)} diagnostic targets"
    st.markdown(meta)
    if getattr(k, "description", ""):
        st.markdown(k.description)

    st.subheader("Structure")
    marginals = {}
    if evidence:
        with st.spinner("Computing every variable's posterior..."):
            marginals = resources.posterior(net, evidence, list(net.variables))
        st.caption(f"With the current {len(evidence)} finding(s): dark boxes are findings; every other box shows "
                   "its most likely state, shaded by its probability. Double borders: diagnostic targets.")
    else:
        st.caption("Arrows point from cause to effect. Double borders: diagnostic targets. Enter findings on the "
                   "Diagnose page to colour the graph by the posterior.")
    groups = net.groups if net.knowledge.groups else None
    dot = ui.graph_dot(net.variables, {v: net.parents(v) for v in net.variables}, net.roles, evidence,
                       marginals, rankdir="LR", groups=groups)
    st.graphviz_chart(dot, width="stretch")

    st.subheader("Variables")
    st.dataframe(net.describe(), hide_index=True, width="stretch")

    st.subheader("Conditional probability tables")
    v = st.selectbox("Variable", net.variables, key="cpt_variable", format_func=ui.pretty)
    parents = net.parents(v)
    st.caption(f"P({v} | {', '.join(parents)})" if parents else f"P({v}): no parents, one prior row.")
    cpt = net.cpt(v)
    st.dataframe(cpt.reset_index() if parents else cpt, hide_index=bool(parents), width="stretch",
                 column_config={s: st.column_config.NumberColumn(format="%.3f") for s in net.states[v]})

    st.subheader("Sources")
    sources = getattr(k, "sources", {}) or {}
    if sources:
        st.dataframe(pd.DataFrame({"key": list(sources), "source": list(sources.values())}), hide_index=True,
                     width="stretch")
    else:
        st.caption("This network lists no sources.")

    if k.tests:
        st.subheader("Orderable tests")
        rows = [{"test": t.label or t.name, "reveals": ", ".join(t.variables), "cost": t.cost,
                 "invasiveness": t.invasiveness, "time to result": t.time_to_result,
                 "source": "; ".join(t.source)} for t in net.tests]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
