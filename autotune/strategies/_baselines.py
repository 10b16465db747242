"""Model-free strategies: space-filling designs, random, grid and diversity search.

These also serve as initial designs (``sobol``, ``random``, ``lhs``, ``grid``) and as the
fallback when a surrogate cannot be fitted. Diversity search is written here: it proposes
the candidate farthest (in the unit cube) from everything tried or pending.
"""

from __future__ import annotations

import torch

from autotune.strategies._base import Candidate, Context, Strategy, register
from autotune.strategies._optimize import candidate_pool, int_option, unit_distance


class _Design(Strategy):
    """A space-filling design continued across asks (skips the points already drawn)."""

    model_based = False
    method = "sobol"

    def ask(self, ctx: Context, n: int) -> list[Candidate]:
        skip = len(ctx.X) + len(ctx.pending)
        pts = ctx.space.sample(n, self.method, seed=ctx.study_seed, skip=skip)
        return [Candidate(torch.tensor(ctx.space.encode(p), dtype=torch.float64)) for p in pts]


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
        seen = {space.key(space.decode(r)) for r in torch.cat([ctx.X, ctx.pending]).tolist()}
        out: list[Candidate] = []
        for p in space.grid(self.points_per_float, seed=ctx.study_seed):
            if space.key(p) not in seen:
                seen.add(space.key(p))
                out.append(Candidate(torch.tensor(space.encode(p), dtype=torch.float64)))
                if len(out) == n:
                    return out
        # The grid is exhausted: continue with a space-filling design.
        rest = space.sample(n - len(out), "sobol", seed=ctx.study_seed, skip=len(ctx.X) + len(ctx.pending))
        return out + [Candidate(torch.tensor(space.encode(p), dtype=torch.float64)) for p in rest]


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
        pool = candidate_pool(ctx.space, self.n_candidates, ctx.stable_seed("diversity"))
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
        return out
