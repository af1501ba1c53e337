"""Simulators: surrogates of the science (test functions, data-set lookups) that stand in for a lab."""
