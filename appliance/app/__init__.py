"""The composition root of Parlour: the only package that knows every layer and wires them together."""

from appliance.app.parlour import GC_YOUNG_THRESHOLD, Parlour, serve, tune_gc_for_serving

__all__ = ["GC_YOUNG_THRESHOLD", "Parlour", "serve", "tune_gc_for_serving"]
