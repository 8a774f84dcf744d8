"""``lesionbn simulate``, ``lesionbn validate``, ``lesionbn fit`` and ``lesionbn evaluate``."""
from __future__ import annotations


from ..errors import CaseDataError
from .common import add_network_argument, network_from


def _missing(value: str):
    if value in ("realistic", "none"):
        return value
    try:
        rate = float(value)
    except ValueError:
        raise CaseDataError(f"--missing must be 'realistic', 'none' or a rate in [0, 1), got {value!r}") from None
    if not 0.0 <= rate < 1.0:
        raise CaseDataError(f"--missing rate must be in [0, 1), got {rate}")
    return rate


def _per_variable(items):
    out = {}
    for item in items or []:
        if "=" not in item:
            raise CaseDataError(f"--per-variable {item!r} must look like VARIABLE=STRENGTH")
        name, value = item.split("=", 1)
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise CaseDataError(f"--per-variable {item!r}: {value!r} is not a number") from None
    return out


def register(sub) -> None:
    p = sub.add_parser("simulate", help="draw a synthetic cohort from the network (CSV or Parquet)")
    add_network_argument(p)
    p.add_argument("--n", type=int, required=True, help="number of cases")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--missing", default="realistic", metavar="realistic|none|RATE",
                   help="missingness: 'realistic' (bedside findings mostly recorded, investigations for some), "
                   "'none', or a rate in [0, 1) applied to every value")
    p.add_argument("--label-latent", action="store_true",
                   help="record the latent (diagnostic) variables, as for a series with confirmed diagnoses")
    p.add_argument("out", help="output file (.csv or .parquet)")
    p.set_defaults(func=simulate)

    p = sub.add_parser("validate", help="check a case file against the network and report what it holds")
    add_network_argument(p)
    p.add_argument("cases", help="case file (.csv or .parquet)")
    p.set_defaults(func=validate)

    p = sub.add_parser("fit", help="update the network's tables from case data (expert tables as the prior)")
    add_network_argument(p)
    p.add_argument("cases", help="case file (.csv or .parquet)")
    p.add_argument("--prior-strength", type=float, required=True, metavar="K",
                   help="how many cases each expert table row is worth (Dirichlet equivalent sample size)")
    p.add_argument("--per-variable", nargs="*", metavar="VAR=K", help="prior strength overrides per variable")
    p.add_argument("--out", required=True, help="fitted knowledge file to write (.yaml)")
    p.add_argument("--max-iter", type=int, default=200)
    p.add_argument("--tol", type=float, default=1e-6, help="stop when the objective gains less than this per case")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--restarts", type=int, default=0, help="extra EM runs from perturbed starts")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=fit)

    p = sub.add_parser("evaluate", help="cross-validate the expert network against the fitted one")
    add_network_argument(p)
    p.add_argument("cases", help="case file with recorded targets (.csv or .parquet)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--target", "-t", nargs="*", help="variables to score (default: latent variables in the data)")
    p.add_argument("--prior-strength", type=float, default=10.0, metavar="K")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", metavar="DIR", help="folder for metrics, confusion matrices and calibration plots")
    p.set_defaults(func=evaluate)


def simulate(args) -> int:
    from ..cases import simulate as draw, write_cases

    net = network_from(args)
    if args.n < 1:
        raise CaseDataError(f"--n must be a positive integer, got {args.n}")
    df = draw(net, args.n, seed=args.seed, missing=_missing(args.missing), label_latent=args.label_latent)
    path = write_cases(df, args.out)
    print(f"wrote {len(df)} cases x {len(df.columns) - 1} variables to {path}")
    return 0


def validate(args) -> int:
    from ..cases import read_cases

    net = network_from(args)
    _, report = read_cases(args.cases, net)
    print(report.summary(), end="")
    return 0


def fit(args) -> int:
    from ..knowledge_write import write_knowledge
    from ..learning import fit as run_fit

    net = network_from(args)
    if args.max_iter < 1:
        raise CaseDataError("--max-iter must be >= 1")
    if args.prior_strength < 0:
        raise CaseDataError("--prior-strength must be >= 0")
    result = run_fit(net, args.cases, prior_strength=args.prior_strength, per_variable=_per_variable(args.per_variable),
                     max_iter=args.max_iter, tol=args.tol, seed=args.seed, restarts=args.restarts,
                     progress=not args.quiet)
    path = write_knowledge(result.network.knowledge, args.out)
    print(result.summary(), end="")
    print(f"\nwrote {path}")
    return 0


def evaluate(args) -> int:
    from ..evaluation import evaluate as run_eval

    net = network_from(args)
    result = run_eval(net, args.cases, targets=args.target or None, folds=args.folds,
                      prior_strength=args.prior_strength, seed=args.seed)
    print(result.summary(), end="")
    if args.out:
        written = result.save(args.out)
        print(f"\nwrote {len(written)} files to {args.out}")
    return 0
