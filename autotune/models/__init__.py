"""Surrogate models over the model space (BoTorch GPs with robust, warm-started fitting)."""

from autotune.models._gp import ConditionalFill, GPFitter, make_gp

__all__ = ["ConditionalFill", "GPFitter", "make_gp"]
