"""The research cycle: its stages as plain functions, the loop that runs them, and the Prefect flow.

May import every room below it (ledger, lab, campaign, records, store); the CLI and review sit above it.
"""
