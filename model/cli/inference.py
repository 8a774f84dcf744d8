"""``lesionbn describe``, ``lesionbn posterior`` and ``lesionbn export``."""
from __future__ import annotations

import textwrap

from ..errors import CaseDataError
from .common import (
    add_evidence_arguments,
    add_network_argument,
    network_from,
    parse_evidence,
    posterior_table,
    print_json,
)


def register(sub) -> None:
    p = sub.add_parser("describe", help="list the variables, their states and descriptions")
    add_network_argument(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=describe)

    p = sub.add_parser("posterior", help="posterior of the latent variables given findings")
    add_network_argument(p)
    add_evidence_arguments(p)
    p.add_argument("--target", "-t", nargs="*", help="variables to report (default: the latent ones)")
    p.add_argument("--top", type=int, default=None, help="show only the N most probable states")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--cases", metavar="FILE",
                   help="a case file (CSV or Parquet, one case per row, blank = not recorded): "
                        "posteriors of every case, as a table")
    p.add_argument("--out", metavar="FILE",
                   help="with --cases: write the table here (.csv or .parquet) instead of "
                        "printing it as CSV")
    p.add_argument("--findings-only", action="store_true",
                   help="with --cases: use only the findings as evidence (ignore columns of "
                        "latent variables, e.g. the labels of a simulated cohort)")
    p.add_argument("--quiet", action="store_true", help="with --cases: no progress bar")
    p.set_defaults(func=posterior)

    p = sub.add_parser("export", help="write the network as BIF, XMLBIF or a knowledge file")
    add_network_argument(p)
    p.add_argument("--format", choices=["bif", "xmlbif", "yaml"], help="default: from the file suffix")
    p.add_argument("out", help="output file")
    p.set_defaults(func=export)


def describe(args) -> int:
    net = network_from(args)
    table = net.describe()
    if args.json:
        print_json({"name": net.name, "version": net.version, "variables": table})
        return 0
    print(f"{net.name} {net.version}  ({len(table)} variables)\n")
    for row in table.itertuples():
        print(f"{row.variable}  [{row.role}]")
        if row.description:
            print(textwrap.indent(textwrap.fill(row.description, 90), "    "))
        print(textwrap.indent(textwrap.fill("states: " + row.states, 90), "    "))
        if row.parents:
            print(f"    parents: {row.parents}")
    return 0


def posterior(args) -> int:
    net = network_from(args)
    if args.cases:
        return posterior_of_cases(net, args)
    if args.out or args.findings_only:
        raise CaseDataError("--out and --findings-only go with --cases FILE")
    evidence = parse_evidence(args.evidence, args.evidence_file)
    post = net.posterior(evidence, targets=args.target or None)
    if args.json:
        print_json({"evidence": evidence, "posterior": post})
        return 0
    if evidence:
        print("evidence: " + ", ".join(f"{k}={v}" for k, v in evidence.items()) + "\n")
    print(posterior_table(post, args.top), end="")
    return 0


#: cases per call of Network.posterior_batch (one progress step)
_CHUNK = 20_000


def posterior_of_cases(net, args) -> int:
    """``lesionbn posterior --cases FILE``: posteriors of every case of a case file."""
    import sys

    import pandas as pd
    from tqdm.auto import tqdm

    from ..cases import read_cases, write_cases

    if args.evidence or args.evidence_file:
        raise CaseDataError("give findings either in --cases or with --evidence, not both")
    data, _ = read_cases(args.cases, net)
    columns = [c for c in data.columns if c != "case_id"]
    if args.findings_only:
        keep = set(net.observable)
        columns = [c for c in columns if c in keep]
    cases = data[(["case_id"] if "case_id" in data.columns else []) + columns]
    targets = args.target or None
    parts = []
    with tqdm(total=len(cases), desc="posteriors", unit="case", disable=args.quiet,
              file=sys.stderr, leave=False) as bar:
        for start in range(0, len(cases), _CHUNK):
            chunk = cases.iloc[start:start + _CHUNK]
            parts.append(net.posterior_batch(chunk, targets=targets, on_impossible="flag").to_frame())
            bar.update(len(chunk))
    table = pd.concat(parts) if parts else pd.DataFrame()
    n_bad = int((~table["possible"]).sum()) if len(table) else 0
    if n_bad:
        print(f"lesionbn: warning: {n_bad} case(s) have evidence of probability zero under the "
              "network (possible = False, no posterior)", file=sys.stderr)
    table = table.reset_index() if "case_id" in cases.columns else table
    if args.out:
        path = write_cases(table, args.out)
        print(f"wrote posteriors of {len(table)} cases to {path}")
    else:
        table.to_csv(sys.stdout, index=False)
    return 0


def export(args) -> int:
    net = network_from(args)
    path = net.export(args.out, args.format)
    print(f"wrote {path}")
    return 0
