"""Model-free strategies: space-filling designs, random, grid and diversity search.

These also serve as initial designs (``sobol``, ``random``, ``lhs``, ``grid``) and as the
fallback when a surrogate cannot be fitted. Diversity search is written here: it proposes
the candidate farthest (in the unit cube) from everything tried or pending.
"""

from __future__ import annotations

import torch

from autotune.strategies._base import Candidate, Context, Strategy, register
from autotune.strategies._optimize import int_option, unit_distance


class _Design(Strategy):
    """A space-filling design continued across asks (skips the points already drawn).

    Over a candidate set (``ctx.domain``) the design is the maximin one among the candidates
    (``random``: a uniform draw of them); fixed columns are set on every design point.
    """

    model_based = False
    method = "sobol"

    def ask(self, ctx: Context, n: int) -> list[Candidate]:
        if ctx.domain.candidates is not None:
            return [Candidate(x) for x in _among_candidates(ctx, n, self.method)]
        skip = len(ctx.X) + len(ctx.pending)
        pts = ctx.space.sample(n, self.method, seed=ctx.study_seed, skip=skip)
        X = torch.tensor([ctx.space.encode(p) for p in pts], dtype=torch.float64).reshape(len(pts), ctx.d)
        return [Candidate(x) for x in (ctx.domain.apply_fixed(X) if ctx.domain.fixed else X)]


def _among_candidates(ctx: Context, n: int, method: str) -> torch.Tensor:
    """``n`` of the domain's remaining candidates: uniform draws for ``random``, else maximin from the busy points."""
    if method == "random":
        R = ctx.domain.remaining()
        g = torch.Generator().manual_seed(ctx.stable_seed("random-candidates"))
        X = R[torch.randperm(len(R), generator=g)[:n]]
        ctx.domain.take(X)
        return X
    return ctx.domain.spread(n, torch.cat([ctx.X, ctx.pending]), ctx.stable_seed("spread"))


@register
class SobolSearch(_Design):
    """Scrambled Sobol points (the default initial design)."""

    name = "sobol"
    method = "sobol"


@register
class RandomSearch(_Design):
    """Independent uniform draws (ordered columns uniform in the unit cube, choices equally likely)."""

    name = "random"
    method = "random"


@register
class LatinHypercube(_Design):
    """Latin hypercube batches: each ask stratifies every column into ``n`` equal bins."""

    name = "lhs"
    method = "lhs"


@register
class GridSearch(Strategy):
    """A grid over the space, visited in a seeded random order, skipping points already tried.

    Args:
        points_per_float: Levels per float parameter.
    """

    name = "grid"
    model_based = False

    def __init__(self, points_per_float: int = 5) -> None:
        self.points_per_float = int_option("points_per_float", points_per_float, 5, 1, 1_000)

    def ask(self, ctx: Context, n: int) -> list[Candidate]:
        space = ctx.space
        if ctx.domain.candidates is not None:
            return [Candidate(x) for x in _among_candidates(ctx, n, "grid")]
        seen = {space.key(space.decode(r)) for r in torch.cat([ctx.X, ctx.pending]).tolist()}
        out: list[Candidate] = []
        for p in space.grid(self.points_per_float, seed=ctx.study_seed):
            if ctx.domain.fixed:
                p = space.decode(ctx.domain.apply_fixed(torch.tensor([space.encode(p)], dtype=torch.float64))[0].tolist())
            if space.key(p) not in seen:
                seen.add(space.key(p))
                out.append(Candidate(torch.tensor(space.encode(p), dtype=torch.float64)))
                if len(out) == n:
                    return out
        # The grid is exhausted: continue with a space-filling design.
        rest = space.sample(n - len(out), "sobol", seed=ctx.study_seed, skip=len(ctx.X) + len(ctx.pending))
        X = torch.tensor([space.encode(p) for p in rest], dtype=torch.float64).reshape(len(rest), space.dim)
        return out + [Candidate(x) for x in (ctx.domain.apply_fixed(X) if ctx.domain.fixed else X)]


@register
class DiversitySearch(Strategy):
    """Maximum distance from everything tried or pending (a model-free exploration baseline).

    Args:
        n_candidates: Size of the space-filling candidate set.
    """

    name = "diversity"
    model_based = False

    def __init__(self, n_candidates: int = 2048) -> None:
        self.n_candidates = int_option("n_candidates", n_candidates, 2048)

    def ask(self, ctx: Context, n: int) -> list[Candidate]:
        pool = ctx.domain.pool(self.n_candidates, ctx.stable_seed("diversity"))
        busy = torch.cat([ctx.X, ctx.pending])
        out: list[Candidate] = []
        for _ in range(n):
            if len(busy):
                dmin = unit_distance(pool, busy, ctx.space).min(dim=1).values
            else:
                dmin = unit_distance(pool, pool.mean(0, keepdim=True), ctx.space).squeeze(-1) * -1
            j = int(dmin.argmax())
            out.append(Candidate(pool[j], float(dmin[j])))
            busy = torch.cat([busy, pool[j: j + 1]])
            ctx.domain.take(pool[j: j + 1])
        return out
