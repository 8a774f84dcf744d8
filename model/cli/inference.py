"""``lesionbn describe``, ``lesionbn posterior`` and ``lesionbn export``."""
from __future__ import annotations

import textwrap

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
    evidence = parse_evidence(args.evidence, args.evidence_file)
    post = net.posterior(evidence, targets=args.target or None)
    if args.json:
        print_json({"evidence": evidence, "posterior": post})
        return 0
    if evidence:
        print("evidence: " + ", ".join(f"{k}={v}" for k, v in evidence.items()) + "\n")
    print(posterior_table(post, args.top), end="")
    return 0


def export(args) -> int:
    net = network_from(args)
    path = net.export(args.out, args.format)
    print(f"wrote {path}")
    return 0
