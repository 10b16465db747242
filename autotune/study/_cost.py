"""The study file's ``known_cost: module:function``, imported as a :class:`~autotune.strategies.KnownCost`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autotune.exceptions import StudyConfigError

if TYPE_CHECKING:
    from autotune.strategies import KnownCost
    from autotune.study._config import StudyConfig


def load_known_cost(config: StudyConfig) -> KnownCost | None:
    """The study's known cost function, imported from the study file's folder first (as ``trial.entry_point``).

    Args:
        config: A validated study.

    Returns:
        The known cost, or ``None`` when the study names none.

    Raises:
        StudyConfigError: Naming the study file, ``known_cost``, the value and the fix.
    """
    from autotune.strategies import KnownCost
    from autotune.study._config import import_from_study

    spec = config.known_cost
    if spec is None:
        return None
    where = (f"{config.study_file}: " if config.study_file is not None else "") + "known_cost"
    target = import_from_study(spec, config.base_dir, where)
    if not callable(target):
        raise StudyConfigError(where, "must name a callable", spec,
                               "point it at a function fn(points, state) returning the cost of each point.")
    return KnownCost(target, config.search_space)
