"""The lab a campaign runs on: the contract the cycle speaks and its adapters (simulators and stations).

May import: campaign (the spec it is built from), errors, and `instruments`, `simulators`, `planners`.
"""
