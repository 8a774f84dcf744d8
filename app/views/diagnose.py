"""The diagnose page: findings by examination group, live posteriors, and the sections below."""
from __future__ import annotations

import streamlit as st

from app import components as ui
from app import resources, state
from app.views import sections


def _on_finding(net, variable: str) -> None:
    """Pill callback: set or clear one finding (refused when it would be impossible)."""
    session = st.session_state
    evidence = session[state.EVIDENCE]
    value = session.get(state.widget_key(variable))
    new = state.with_finding(evidence, variable, value)
    if not resources.is_possible(net, new):
        session[state.widget_key(variable)] = evidence.get(variable)
        state.add_notice(
            session,
            f"{ui.pretty(variable)} = {ui.pretty(value)} is impossible together with the other findings "
            "under this network, so it was not applied.",
        )
        return
    state.set_evidence(session, new)
    if len(st.query_params):
        st.query_params.clear()  # a shared link in the address bar would no longer match the case


def _help(net, variable: str) -> str | None:
    """Hover text: the finding's description, then what each value means (when the file says)."""
    text = net.description(variable) or ""
    var = net.knowledge.variables.get(variable)
    meanings = getattr(var, "state_descriptions", None) or {}
    if meanings:
        text += "\n\n" + "\n".join(f"- **{ui.pretty(s)}**: {d}" for s, d in meanings.items())
    return text or None


def targets_shown(net) -> list[str]:
    """The diagnostic targets to chart: the network's latent variables, or a user choice on
    generic networks that declare none."""
    if len(net.latent) < len(net.variables):
        return list(net.latent)
    options = list(net.variables)
    default = [v for v in options if v not in st.session_state[state.EVIDENCE]][:3]
    chosen = st.multiselect("Show the posterior of", options, default=default, key="shown_targets",
                            format_func=ui.pretty)
    return chosen


def findings_panel(net) -> None:
    session = st.session_state
    evidence = session[state.EVIDENCE]
    n_obs = len(net.observable)
    st.subheader("Findings")
    st.caption(
        f"{len(evidence)} of {n_obs} findings entered. Every finding starts *not examined*: "
        "click a value to set it, click it again to clear it. Hover the question mark beside a finding "
        "for its description."
    )
    groups = [(g, [v for v in vs if v in net.states]) for g, vs in net.groups]
    grouped = {v for _, vs in groups for v in vs}
    groups.append(("Other findings", [v for v in net.observable if v not in grouped]))
    groups = [(g, vs) for g, vs in groups if vs]
    # always one line here, so the tabs below keep their place (and the open tab) across reruns
    entered = " · ".join(f"{ui.pretty(v)} = **{ui.pretty(s)}**" for v, s in evidence.items())
    st.markdown("Entered: " + (entered or "none yet"))
    tabs = st.tabs([g for g, _ in groups], key="finding_groups")
    for tab, (_, variables) in zip(tabs, groups):
        with tab:
            for v in variables:
                key = state.widget_key(v)
                if session.get(key) != evidence.get(v):
                    session[key] = evidence.get(v)
                st.pills(
                    ui.pretty(v),
                    net.states[v],
                    selection_mode="single",
                    format_func=ui.pretty,
                    key=key,
                    help=_help(net, v),
                    on_change=_on_finding,
                    args=(net, v),
                )


def posterior_panel(net, targets: list[str]) -> None:
    session = st.session_state
    evidence = session[state.EVIDENCE]
    previous = session.get(state.PREVIOUS)
    st.subheader("Posterior")
    if not targets:
        st.info("Choose at least one variable to show.")
        return
    post = resources.posterior(net, evidence, targets)
    before = resources.posterior(net, previous, targets) if previous is not None else None
    if session.get(state.LAST_CHANGE) and before is not None:
        st.caption(
            f"Last change: **{session[state.LAST_CHANGE]}**. Grey ticks and signed points show the "
            "probabilities just before it."
        )
    elif session.get(state.LAST_CHANGE):
        st.caption(f"Last change: **{session[state.LAST_CHANGE]}**.")
    else:
        st.caption("Prior probabilities (no findings yet)." if not evidence else "Posterior given the findings.")
    show_ci = st.toggle(
        "Show 90% credible intervals", key="show_intervals",
        help="How uncertain each probability is because the model's own numbers are uncertain: the "
        "network's tables are resampled 100 times from Dirichlet distributions centred on them "
        "(prior strength 20 cases per row) and the 5th-95th percentiles of the posterior are drawn "
        "as black lines.")
    ci = None
    if show_ci:
        with st.spinner("Resampling the model's tables (100 networks)..."):
            ci = resources.intervals(net, evidence, targets)
    for t in targets:
        b = before[t] if before is not None else None
        interval = ci[ci["target"] == t].set_index("state") if ci is not None else None
        with st.container(key=f"posterior_{t}"):
            st.markdown(ui.top_line(t, post[t], b))
            st.vega_lite_chart(spec=ui.posterior_chart(post[t], b, interval=interval), width="stretch")
            rest = ui.rest_caption(post[t])
            if rest:
                st.caption(rest)


def render(net) -> None:
    session = st.session_state
    clock = resources.Timer()
    sections.sidebar_case_tools(net)
    st.title("What-if diagnosis")
    st.caption(ui.DISCLAIMER)
    with st.container():  # one slot, however many notices: the elements below keep their identity
        for notice in state.notices(session):
            st.warning(notice, icon=":material/info:")
    left, right = st.columns([11, 9], gap="large")
    with right:
        targets = targets_shown(net)
    timings = {"sidebar": clock.lap()}
    with left:
        findings_panel(net)
    timings["findings"] = clock.lap()
    with right, st.container(key="posterior_panel"):
        posterior_panel(net, targets)
    timings["posterior"] = clock.lap()
    st.divider()
    sections.lower_sections(net, targets)
    timings["lower section"] = clock.lap()
    session["_timings"] = timings  # read by scripts/measure_rerun.py
