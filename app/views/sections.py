"""Case tools (sidebar) and the lower sections: next tests, why, compare, report and share."""
from __future__ import annotations

import math
from urllib.parse import urlencode, urlsplit, urlunsplit

import pandas as pd
import streamlit as st

from app import components as ui
from app import report, resources, state

WHATIF_TESTS = 5
WHATIF_OUTCOMES = 8
#: |weight of evidence| (nats) below which a finding is listed as having little effect (display only)
LITTLE_EFFECT = 0.1
ROBUSTNESS_ROWS = 6


# --------------------------------------------------------------------------- callbacks

def _load_vignette(net, vignettes: dict) -> None:
    session = st.session_state
    vid = session.get("vignette_choice")
    v = vignettes.get(vid)
    if v is None:
        return
    evidence, warnings = state.validate_evidence(v.evidence, net.states, net.observable, origin=f"case {vid}")
    evidence, more = state.drop_impossible(evidence, lambda e: resources.is_possible(net, e))
    state.set_evidence(session, evidence, label=f"example case {vid} loaded")
    session[state.PREVIOUS] = None
    for w in warnings + more:
        state.add_notice(session, w)
    session["loaded_vignette"] = vid
    if len(st.query_params):
        st.query_params.clear()


def _reset() -> None:
    state.reset(st.session_state)
    st.session_state.pop("loaded_vignette", None)
    if len(st.query_params):
        st.query_params.clear()


def _save() -> None:
    name = state.save_case(st.session_state, st.session_state.get("save_name", ""))
    st.session_state["compare_choice"] = name
    st.toast(f"Saved the current case as “{name}”. Compare it under *Compare cases*.")


def _restore_saved(name: str) -> None:
    saved = st.session_state[state.SAVED].get(name)
    if saved is not None:
        state.set_evidence(st.session_state, saved, label=f"saved case “{name}” loaded")
        if len(st.query_params):
            st.query_params.clear()


# --------------------------------------------------------------------------- sidebar

def sidebar_case_tools(net) -> None:
    session = st.session_state
    vignettes = {
        v.id: v for v in resources.get_vignettes()
        if not state.validate_evidence(v.evidence, net.states, net.observable)[1]
    }
    with st.sidebar:
        st.markdown("#### Case")
        if vignettes:
            st.selectbox(
                "Example case",
                list(vignettes),
                key="vignette_choice",
                format_func=lambda vid: f"{vid}: {vignettes[vid].summary[:70]}" if vignettes[vid].summary else vid,
                help="Clinical vignettes shipped with the project (data/vignettes).",
            )
            st.button("Load example case", on_click=_load_vignette, args=(net, vignettes), key="load_vignette",
                      icon=":material/folder_open:", width="stretch")
            loaded = vignettes.get(session.get("loaded_vignette"))
            if loaded is not None:
                if loaded.summary:
                    st.caption(f"**{loaded.id}**: {loaded.summary}")
                answers = {t: loaded.accepted(t) for t in sorted(set(loaded.expected) | set(loaded.acceptable))}
                if any(answers.values()):
                    with st.expander("Expert's answer (for teaching)"):
                        st.markdown("\n".join(f"- {ui.pretty(t)}: {', '.join(ui.pretty(a) for a in sorted(ok))}"
                                               for t, ok in answers.items() if ok)
                                    + (f"\n\n{loaded.rationale}" if loaded.rationale else ""))
        else:
            st.caption("No example cases match this network.")
        st.button("Reset (clear all findings)", on_click=_reset, key="reset", icon=":material/restart_alt:",
                  width="stretch")
        st.text_input("Name for this case", key="save_name", placeholder="e.g. bed 4, day 2")
        st.button("Save case for comparison", on_click=_save, key="save_case", icon=":material/bookmark_add:",
                  width="stretch", disabled=not session[state.EVIDENCE])


# --------------------------------------------------------------------------- lower sections

def lower_sections(net, targets: list[str]) -> None:
    tabs = st.tabs(["Next tests", "Why", "Compare cases", "Share and report"], key="section", on_change="rerun")
    lazy = all(t.open is not None for t in tabs)
    names = ("next", "why", "compare", "report")
    for tab, name in zip(tabs, names):
        if lazy and not tab.open:
            continue  # only the visible section is computed
        with tab:
            {"next": next_tests, "why": why, "compare": compare, "report": share_and_report}[name](net, targets)


def _default_target(net) -> str:
    try:
        from model.recommend import default_target
    except ImportError:  # an older model/: the first target
        return net.latent[0]
    target = default_target(net)
    return target if target in net.latent else net.latent[0]


def _target_select(net, key: str, label: str) -> str:
    options = list(net.latent)
    if key not in st.session_state or st.session_state[key] not in options:
        st.session_state[key] = _default_target(net)
    return st.selectbox(label, options, key=key, format_func=ui.pretty)


def next_tests(net, targets) -> None:
    session = st.session_state
    evidence = session[state.EVIDENCE]
    target = _target_select(net, "rec_target", "Choose the tests that best resolve")
    if not hasattr(net, "recommend"):
        st.info("Test recommendations are not available in this version of the model (net.recommend).")
        return
    try:
        with st.spinner("Ranking tests by expected information gain..."):
            rec = resources.memo("recommend", net, evidence, (target,),
                                 lambda: net.recommend(dict(evidence), target=target))
    except Exception as exc:  # the app must stay usable whatever the model raises
        st.warning(f"Recommendations could not be computed: {exc}")
        return
    attrs = rec.attrs
    if attrs.get("stop") and attrs.get("stop_reason"):
        st.success(f"{attrs['stop_reason']}", icon=":material/flag:")
    if rec.empty:
        st.info("No test left that would reveal anything new.")
        return
    st.dataframe(ui.recommendation_table(rec), hide_index=True, width="stretch",
                 column_config=ui.recommendation_columns(str(attrs.get("rank_rule", ""))))
    if attrs.get("rank_rule"):
        st.caption(f"Ranked by {attrs['rank_rule']}.")
    if attrs.get("skipped"):
        st.caption(f"Left out (too many joint outcomes to preview): {', '.join(map(str, attrs['skipped']))}.")
    if "outcomes" not in rec.columns:
        return
    st.markdown(f"**What if?** Open a test to see its possible results, how likely each is now, and the "
                f"posterior of {ui.pretty(target)} after it. *Apply* enters that result as findings.")
    now = resources.posterior(net, evidence, [target])[target]
    tests = {t.name: t for t in net.tests}
    for i, name in enumerate(rec.index[:WHATIF_TESTS]):
        label = rec.at[name, "label"] or name
        exp = st.expander(str(label), expanded=(i == 0), key=f"whatif_{name}", on_change="rerun")
        if exp.open is False:
            continue
        with exp:
            what_if(net, evidence, target, name, rec.at[name, "outcomes"], now, tests.get(name))


def what_if(net, evidence: dict, target: str, test: str, outcomes: list, now, test_group=None) -> None:
    if test_group is not None and getattr(test_group, "description", ""):
        st.caption(test_group.description)
    ranked = sorted(outcomes, key=lambda o: -float(o["probability"]))
    shown = [o for o in ranked if float(o["probability"]) > 0][:WHATIF_OUTCOMES]
    for j, o in enumerate(shown):
        outcome = {str(k): str(v) for k, v in o["outcome"].items()}
        after = pd.Series(o["posterior"])
        c1, c2, c3 = st.columns([3, 6, 1.3], vertical_alignment="center")
        c1.markdown(", ".join(f"{ui.pretty(k)} = **{ui.pretty(v)}**" for k, v in outcome.items())
                    + f"  \n{ui.pct(o['probability'])} likely now")
        line = ui.top_line(target, after, now, k=3).split(": ", 1)[1]
        if o.get("leader_changes"):
            line += "  \n:orange[leading state changes]"
        c2.markdown(line)
        c3.button("Apply", key=f"apply_{test}_{j}", on_click=_apply_many, args=(outcome,),
                  help="Enter this result as findings")
    rest = ranked[len(shown):]
    if rest:
        st.caption(f"{len(rest)} less likely results not shown ({ui.pct(sum(float(o['probability']) for o in rest))} together).")


def _apply_many(outcome: dict) -> None:
    session = st.session_state
    new = {**session[state.EVIDENCE], **outcome}
    label = ", ".join(f"{k} = {v}" for k, v in outcome.items()) + " (applied from a what-if)"
    state.set_evidence(session, new, label=label)
    if len(st.query_params):
        st.query_params.clear()


def why(net, targets) -> None:
    session = st.session_state
    evidence = session[state.EVIDENCE]
    target = _target_select(net, "why_target", "Explain")
    if not hasattr(net, "explain"):
        st.info("Explanations are not available in this version of the model (net.explain).")
    elif not evidence:
        st.info("Enter findings to see which of them support or oppose the leading hypothesis.")
    else:
        try:
            ex = resources.memo("explain", net, evidence, (target,), lambda: net.explain(dict(evidence), target=target))
        except Exception as exc:
            st.warning(f"The explanation could not be computed: {exc}")
        else:
            explanation(ex)
            robustness(net, evidence, target)
    if hasattr(net, "most_probable_explanation"):
        variables = list(targets) or list(net.latent)
        box = st.expander("Most probable joint explanation", expanded=True, key="mpe_open", on_change="rerun",
                          icon=":material/join_inner:")
        if box.open is not False:  # computed only while open (30-250 ms with many findings)
            with box:
                st.caption(f"The best few combinations of {', '.join(map(ui.pretty, variables))} given the "
                           "findings, exactly (every other variable summed out).")
                try:
                    with st.spinner("Searching the most probable combinations..."):
                        mpe = resources.memo("mpe", net, evidence, tuple(variables),
                                             lambda: net.most_probable_explanation(dict(evidence), variables=variables, n=5))
                except Exception as exc:
                    st.warning(f"The most probable explanation could not be computed: {exc}")
                else:
                    st.dataframe(ui.mpe_table(mpe), hide_index=True, width="stretch",
                                 column_config={"probability": st.column_config.ProgressColumn(
                                     "probability", format="percent", min_value=0.0, max_value=1.0)})


def robustness(net, evidence: dict, target: str) -> None:
    """Which single finding, had it been absent or different, would change the leading state."""
    if not hasattr(net, "evidence_sensitivity"):
        return
    try:
        sens = resources.memo("sensitivity", net, evidence, (target,),
                              lambda: net.evidence_sensitivity(dict(evidence), target=target))
    except Exception as exc:
        st.caption(f"(Robustness to single findings could not be computed: {exc})")
        return
    flips = sens[sens["flips"]].sort_values("p_leader", ascending=False)
    st.markdown("**What would change the conclusion**")
    if flips.empty:
        st.caption("No single finding, had it been missing or different, would change the leading "
                   f"{ui.pretty(target)}: the conclusion does not hang on any one finding.")
        return
    lines = []
    for r in flips.head(ROBUSTNESS_ROWS).itertuples():
        what = "had not been examined" if r.change == "not observed" else f"had been {ui.pretty(r.new_state)}"
        lines.append(f"- if {ui.pretty(r.finding)} {what}: {ui.pretty(r.leader)} would lead ({ui.pct(r.p_leader)})")
    more = len(flips) - ROBUSTNESS_ROWS
    st.markdown("\n".join(lines) + (f"\n- and {more} more such changes" if more > 0 else ""))


def explanation(ex) -> None:
    p = float(ex.posterior[ex.hypothesis])
    st.markdown(f"Leading hypothesis: **{ui.pretty(ex.target)} = {ui.pretty(ex.hypothesis)}** ({ui.pct(p)}), "
                f"against {ui.pretty(ex.rival_label)}.")
    if ex.conflicting:
        drivers = ", ".join(ui.pretty(d) for d in ex.conflict_drivers)
        st.warning("**The findings conflict.** " + ex.conflict_message
                   + (f" Check first: {drivers}." if drivers else ""), icon=":material/warning:")
    else:
        st.caption(ex.conflict_message)
    f = ex.findings
    if f.empty:
        return
    strong = f[f["woe"].abs() >= LITTLE_EFFECT]
    if not strong.empty:
        data, spec = ui.woe_chart(strong, ex.hypothesis)
        st.vega_lite_chart(data, spec, width="stretch")
    pro, con = st.columns(2, gap="large")
    for col, title, part in ((pro, f"For {ui.pretty(ex.hypothesis)}", strong[strong["woe"] > 0]),
                             (con, f"Against {ui.pretty(ex.hypothesis)}", strong[strong["woe"] < 0])):
        with col:
            st.markdown(f"**{title}**")
            if part.empty:
                st.caption("none")
            for name, r in part.iterrows():
                st.markdown(f"- {ui.pretty(name)} = {ui.pretty(r['state'])}: likelihood ratio "
                            f"{r['likelihood_ratio']:.3g}; {ui.pretty(ex.hypothesis)} would be "
                            f"{ui.pct(r['posterior_without'])} without it")
    weak = f[f["woe"].abs() < LITTLE_EFFECT]
    if not weak.empty:
        st.caption(f"Little effect given the other findings (likelihood ratio between {math.exp(-LITTLE_EFFECT):.2f} "
                   f"and {math.exp(LITTLE_EFFECT):.2f}): " + ", ".join(ui.pretty(v) for v in weak.index) + ".")


def compare(net, targets) -> None:
    session = st.session_state
    saved = session[state.SAVED]
    if not saved:
        st.info("Save the current case (sidebar) to compare it with another one side by side.")
        return
    name = st.selectbox("Compare the current case with", list(saved), key="compare_choice")
    other = saved[name]
    current = session[state.EVIDENCE]
    variables = [v for v in net.observable if v in current or v in other]
    left, right = st.columns(2, gap="large")
    for col, title, ev in ((left, "Current case", current), (right, f"Saved: {name}", other)):
        with col:
            st.markdown(f"**{title}** ({len(ev)} findings)")
            if targets:
                post = resources.posterior(net, ev, targets)
                for t in targets:
                    st.markdown(ui.top_line(t, post[t]))
    if variables:
        diff = pd.DataFrame(
            {
                "finding": [ui.pretty(v) for v in variables],
                "current": [ui.pretty(current.get(v, "—")) for v in variables],
                name: [ui.pretty(other.get(v, "—")) for v in variables],
                "differs": ["≠" if current.get(v) != other.get(v) else "" for v in variables],
            }
        )
        st.dataframe(diff, hide_index=True, width="stretch")
    st.button(f"Load “{name}” as the current case", on_click=_restore_saved, args=(name,), key="restore_saved")


def share_and_report(net, targets) -> None:
    session = st.session_state
    evidence = session[state.EVIDENCE]
    st.markdown("**Share this case as a link.** The findings go into the address (no names, nothing stored).")
    if st.button("Create share link", key="share", icon=":material/link:", disabled=not evidence):
        params = state.evidence_to_query(evidence)
        st.query_params.from_dict(params)
        parts = urlsplit(st.context.url or "")
        base = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", "")) if parts.netloc else ""
        st.code(f"{base}?{urlencode(params)}", language=None)
        st.caption("The address bar now holds this link too; it is cleared when the case changes.")
    st.markdown("**Download a report** (findings, posteriors, the explanation and the best next tests). It is "
                "generated only when you click, in memory; nothing is saved on the server.")

    evidence = dict(evidence)
    targets = list(targets)

    def data():
        # runs later, outside the script run, when a download is clicked: no session state here
        post = net.posterior(evidence, targets=targets) if targets else {}
        target = _default_target(net)
        ex = rec = None
        try:
            if evidence and hasattr(net, "explain"):
                ex = net.explain(evidence, target=target)
            if hasattr(net, "recommend"):
                rec = net.recommend(evidence, target=target, k=5, preview=False)
        except Exception:  # a report without these sections beats no report
            pass
        return report.ReportData.build(net, evidence, post, ex, rec)

    row = st.container(horizontal=True)
    row.download_button("Markdown", lambda: report.markdown(data()), file_name="lesionbn-case.md",
                       mime="text/markdown", on_click="ignore", icon=":material/description:", key="dl_md")
    row.download_button("HTML", lambda: report.html(data()), file_name="lesionbn-case.html",
                       mime="text/html", on_click="ignore", icon=":material/article:", key="dl_html")
    row.download_button("JSON (evidence and posteriors)", lambda: report.to_json(data()), file_name="lesionbn-case.json",
                       mime="application/json", on_click="ignore", icon=":material/data_object:", key="dl_json")
