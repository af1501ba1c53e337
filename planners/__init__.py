"""Planners: parameter spaces and their encodings, the planner contract, baseline and Bayesian planners."""
