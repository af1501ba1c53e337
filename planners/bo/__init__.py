"""The Bayesian planner's parts: encoding of points, surrogate models, acquisition, optimisation of acquisition.

`planners.bo.planner.BayesianPlanner` composes them; each module can be used and tested on its own.
"""
