"""Surrogate models over the model space (BoTorch GPs with robust, warm-started fitting).

:class:`Surrogates` holds the models of one ask (objective, outcome constraints, crashes,
cost) and the probability of feasibility; :class:`GPFitter` fits each GP.
"""

from autotune.models._device import DEVICE_CHOICES, check_device, device_scope, select_device
from autotune.models._gp import ConditionalFill, GPFitter, gp_posterior, make_gp
from autotune.models._lean import LeanGP, lean_condition, lean_posterior
from autotune.models._lengthscale import LengthScaleBounds, length_scale_bounds
from autotune.models._surrogates import Surrogates
from autotune.models._warp import OUTPUT_WARPS, PowerWarp, evidence_exponent, fit_output_warp

__all__ = [
    "DEVICE_CHOICES",
    "ConditionalFill",
    "GPFitter",
    "LeanGP",
    "LengthScaleBounds",
    "OUTPUT_WARPS",
    "PowerWarp",
    "Surrogates",
    "check_device",
    "device_scope",
    "evidence_exponent",
    "fit_output_warp",
    "gp_posterior",
    "lean_condition",
    "lean_posterior",
    "length_scale_bounds",
    "make_gp",
    "select_device",
]
