"""The built-in observer types of scenario files, registered as a plugin (entry point ``observers``).

The observer classes live in :mod:`particledyn.observers` (the loss),
:mod:`particledyn.geometry.observers` and :mod:`particledyn.topology.observers`;
each is imported only when a scenario uses it.
"""

from __future__ import annotations

from ..observers import LossObserver
from .checks import Bool, Choice, Derived, Float, FloatList, Int, Key, Literal, OneOf, ScenarioError
from .kernels import output_columns
from .observers import ObserverType, register_observer


def _build_loss(options, ctx):
    data = ctx.dataset
    labels = None
    if data.y_train.dtype.kind in "iu" and hasattr(ctx.kernel, "accuracy"):
        labels = (data.z_train, data.y_train, data.z_test, data.y_test)
    return LossObserver(options["every"], labels=labels)


# ---------------------------------------------------------------- geometry
_K_NEIGHBOURS = Key(
    "k",
    Int(1, 1000),
    "Nearest neighbours per particle for the pair lists (shared between observers with the same k).",
    6,
)
_SOURCE = Key(
    "source",
    Choice(("update", "field")),
    "Measure K of the optimizer's update (\"update\") or of the kernel's raw field.",
    "update",
)
_MAX_DIM = Key("max_dim", Int(0, 3), "Highest homology dimension.", 2)


def _build_pairwise(options, ctx):
    from ..geometry.observers import PairwiseLipschitzObserver

    return PairwiseLipschitzObserver(
        options["every"], cache=ctx.neighbour_cache(options["k"]), source=options["source"]
    )


def _build_lemmas(options, ctx):
    from ..geometry.observers import LemmaObserver

    return LemmaObserver(
        options["K"],
        options["every"],
        cache=ctx.neighbour_cache(options["k"]),
        rtol=options.get("rtol"),
        equal_tol=options.get("equal_tol"),
        source=options["source"],
        n_sample=options["n_sample"],
        seed=ctx.resolved.run.seed,
    )


def _build_merges(options, ctx):
    from ..geometry.observers import MergeObserver

    eps, relative = options.get("eps"), options.get("eps_relative")
    if eps is None and relative is None:  # a fixed default scale would be refused on dense starts
        relative = 0.5
    return MergeObserver(
        0.0 if eps is None else eps,
        options["every"],
        cache=ctx.neighbour_cache(options["k"]),
        eps_relative=relative,
        allow_close_start=options["allow_close_start"],
    )


def _build_closest(options, ctx):
    from ..geometry.observers import ClosestApproachObserver

    return ClosestApproachObserver(options["every"])


def _build_balance(options, ctx):
    from ..geometry.observers import BalanceObserver

    return BalanceObserver(options["every"], output_columns=output_columns(ctx.kernel), tol=options["tol"])


def _adam(done) -> bool:
    return done.optimizer.name == "adam"


def _build_sharpness(options, ctx):
    from ..geometry import kernel_sharpness
    from ..geometry.sharpness import check_eigenpair_count

    optimizer = ctx.optimizer
    if options["preconditioned"] and not hasattr(optimizer, "preconditioner"):
        raise ScenarioError(
            f'preconditioned = true: expected false for optimizer.name = "{optimizer.name}" '
            "(only adam has a preconditioner)"
        )
    if ctx.n_particles is not None:
        check_eigenpair_count(options["k"], ctx.n_particles * ctx.kernel.dim)
    return kernel_sharpness(
        options["every"],
        k=options["k"],
        tol=options["tol"],
        preconditioned=options["preconditioned"],
        gradient_fraction=options["grad_fraction"],
        method=options["method"],
        on=options["on"],
        iterations=options["iterations"],
        batch_size=None if options["batch_size"] == "all" else options["batch_size"],
    )


# ---------------------------------------------------------------- topology
def _build_betti(options, ctx):
    from ..topology.observers import BettiObserver

    scale, relative = (
        v[0] if isinstance(v, list) and len(v) == 1 else v
        for v in (options.get("scale"), options.get("scale_relative"))
    )
    if scale is not None and relative is not None:
        raise ScenarioError(
            f"scale = {scale!r} and scale_relative = {relative!r}: expected one of them "
            "(a scale, or fractions of the start's diameter)"
        )
    return BettiObserver(
        options["every"],
        scale=scale,
        scale_relative=relative,
        max_dim=options["max_dim"],
        complex=options["complex"],
        landmarks=options.get("landmarks"),
        fixed_landmarks=options["fixed_landmarks"],
        n_threads=options.get("n_threads"),
        coeff=options["coeff"],
    )


def _build_expansion(options, ctx):
    from ..topology.observers import ExpansionObserver

    return ExpansionObserver(
        options["every"],
        radii=options["radii"],
        K=options["K"],
        relative=options["relative"],
        max_dim=options["max_dim"],
        model=options["model"],
    )


def _build_zigzag(options, ctx):
    from ..topology.observers import ZigzagObserver

    return ZigzagObserver(options["every"], scale=options["scale"], max_dim=options["max_dim"])


_POSITIVE = Float(0.0, lo_open=True)
_LEMMA_KINDS = ("pairwise", "previous", "held_out", "apriori", "jacobian_sup")
_NON_NEGATIVE = Float(0.0)

for _type in (
    ObserverType(
        "loss",
        "training loss (full training set), test loss; accuracies for classification",
        (),
        _build_loss,
        "particledyn.observers:LossObserver",
    ),
    ObserverType(
        "pairwise_lipschitz",
        "pairwise K of Lemma 4 over neighbour pairs, eta*K, eta* = 1/K",
        (_K_NEIGHBOURS, _SOURCE),
        _build_pairwise,
        "particledyn.geometry.observers:PairwiseLipschitzObserver",
    ),
    ObserverType(
        "lemmas",
        "Lemma 1 (no splits) and Lemma 2 ((1 - eta K) d <= d' <= (1 + eta K) d) checks",
        (
            Key(
                "K",
                OneOf((Choice(_LEMMA_KINDS), _NON_NEGATIVE)),
                'Lipschitz constant to test: a number, "apriori" (certified per-neuron Jacobian '
                'bound), "jacobian_sup", "previous" (last step\'s pairwise K), "held_out" (half '
                'the pairs) or "pairwise" (the step\'s own: cannot fail).',
                "pairwise",
            ),
            _K_NEIGHBOURS,
            Key(
                "rtol", _NON_NEGATIVE, "Relative tolerance of the bound checks (optional: tied to the dtype)."
            ),
            Key(
                "equal_tol",
                _NON_NEGATIVE,
                "Distance under which two particles count as equal "
                "(optional: 8 ulps of the largest coordinate).",
            ),
            Key("n_sample", Int(0), "Random particles whose extreme partners join kNN pairs.", 64),
            _SOURCE,
        ),
        _build_lemmas,
        "particledyn.geometry.observers:LemmaObserver",
    ),
    ObserverType(
        "merges",
        "atoms at scale eps, merges, splits and merged mass (Theorems 1 and 3)",
        (
            Key(
                "eps",
                _NON_NEGATIVE,
                "Atom scale: particles closer than eps form one atom "
                "(optional; default: eps_relative = 0.5).",
            ),
            Key(
                "eps_relative",
                _POSITIVE,
                "Atom scale as a fraction of the start's closest-pair "
                "distance (optional; replaces eps; 0.5 when neither is given).",
            ),
            Key(
                "allow_close_start",
                Bool(),
                "Accept a start with pairs already within eps (refused otherwise).",
                False,
            ),
            _K_NEIGHBOURS,
        ),
        _build_merges,
        "particledyn.geometry.observers:MergeObserver",
    ),
    ObserverType(
        "closest_approach",
        "closest pair at every step (merges between sparse records)",
        (),
        _build_closest,
        "particledyn.geometry.observers:ClosestApproachObserver",
    ),
    ObserverType(
        "balance",
        "ReLU balance |a_i|^2 - |w_i|^2, its drift and pathological neurons",
        (Key("tol", _NON_NEGATIVE, "|c_i| <= tol counts as balanced.", 0.0),),
        _build_balance,
        "particledyn.geometry.observers:BalanceObserver",
    ),
    ObserverType(
        "sharpness",
        "top Hessian eigenvalue(s) by warm-started Lanczos, eta* and 2/eta thresholds",
        (
            Key("k", Int(1, 64), "Number of top eigenpairs.", 1),
            Key("tol", _POSITIVE, "Ritz residual tolerance of Lanczos.", 1e-6),
            Key(
                "preconditioned",
                Bool(),
                "Use Adam's P^(-1/2) H P^(-1/2) (adam only).",
                Derived("true for adam, else false", _adam),
            ),
            Key(
                "grad_fraction",
                Bool(),
                "Also record grad_fraction, the gradient's fraction in the top-k eigenspace.",
                False,
            ),
            Key(
                "method",
                Choice(("lanczos", "power_iter")),
                "Lanczos to tol (warm-started), or the paper authors' K: `iterations` power-iteration "
                "steps from a fresh uniform start, step i on batch i mod b (their high-dim/sharpness.py).",
                "lanczos",
            ),
            Key(
                "on",
                Choice(("train", "test")),
                "The data set of the Hessian (test: the held-out rows).",
                "train",
            ),
            Key("iterations", Int(1, 100000), "Most power-iteration steps (method = power_iter).", 20),
            Key(
                "batch_size",
                OneOf((Literal("optimizer"), Literal("all"), Int(1))),
                "Rows per Hessian batch of the power iteration, in data order, the last one short: "
                '"optimizer" (its batch size, as the authors\' test loader), "all" or an integer.',
                "optimizer",
            ),
        ),
        _build_sharpness,
        "particledyn.geometry:KernelSharpnessObserver",
    ),
    ObserverType(
        "betti",
        "Betti numbers b_0..b_max_dim with persistence diagrams (ripser/gudhi)",
        (
            Key(
                "scale",
                OneOf((Literal("adaptive"), FloatList(_POSITIVE))),
                'Fixed scale(s) > 0, or "adaptive" (the authors\' recipe: Rips edge length diameter/4 '
                "of each frame) (optional; default: scale_relative = 0.25).",
            ),
            Key(
                "scale_relative",
                FloatList(_POSITIVE),
                "Scale(s) as fractions of the start's diameter, fixed for the run (Rips edge length; "
                "alpha radius half of it) (optional; replaces scale; 0.25 when neither is given).",
            ),
            _MAX_DIM,
            Key(
                "complex",
                Choice(("rips", "alpha")),
                "Rips (scale = edge length) or alpha (union of balls, scale = radius).",
                "rips",
            ),
            Key("landmarks", Int(1), "Compute on this many max-min landmarks (optional)."),
            Key("fixed_landmarks", Bool(), "Keep the first landmarks' particle indices.", False),
            Key("n_threads", Int(1), "Threads of the persistence backend (optional)."),
            Key(
                "coeff",
                Int(2, 65521),
                "Prime p of the coefficient field Z/p. The paper's code: "
                'Rips at diameter/4 to dimension 3 over Z/11, i.e. scale = "adaptive", complex = '
                '"rips", max_dim = 2, coeff = 11, no landmarks.',
                2,
            ),
        ),
        _build_betti,
        "particledyn.topology.observers:BettiObserver",
    ),
    ObserverType(
        "expansion",
        "Theorem 2: S(t)^r beside S(t+1)^((1 - eta K) r)",
        (
            Key(
                "radii",
                FloatList(_POSITIVE),
                "Ball radii r (or fractions of the minimum separation with relative = true).",
                [0.25],
            ),
            Key(
                "K",
                OneOf((Choice(("empirical", "apriori")), _NON_NEGATIVE)),
                'Lipschitz constant: a number (declared an upper bound), "apriori" (the certified '
                'per-neuron Jacobian bound) or "empirical" (the step\'s largest neighbour ratio, a '
                "lower bound: never flags a contradiction).",
                "empirical",
            ),
            Key("relative", Bool(), "Read radii as fractions of the minimum separation.", False),
            _MAX_DIM,
            Key("model", Choice(("auto", "alpha", "rips")), "Union-of-balls model.", "auto"),
        ),
        _build_expansion,
        "particledyn.topology.observers:ExpansionObserver",
    ),
    ObserverType(
        "zigzag",
        "records frames (key frame) for a zigzag barcode after the run",
        (
            Key("scale", _NON_NEGATIVE, "Rips edge length of the zigzag.", 0.25),
            Key("max_dim", Int(0, 3), "Highest homology dimension.", 1),
        ),
        _build_zigzag,
        "particledyn.topology.observers:ZigzagObserver",
    ),
):
    register_observer(_type)
