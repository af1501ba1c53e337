"""The research cycle: its stages as plain functions, the loop that runs them, and the Prefect flow.

- `context`: what a campaign's stages share (`load_context` takes the lab, planner and clock as arguments);
- `observations`: finished experiments as the planner sees them, the data hash, improvement and targets;
- `abduce`, `deduce`, `experiment`, `induce`: the stages (deduce's pure part, `plan_batch`, is what replay calls);
- `recovery`: opening cycles, sizing batches, continuing after a crash, closing the campaign;
- `loop`: the loop written once; `flow`: the same loop as Prefect tasks (with Prefect's retries); `progress`.

May import every room below it (ledger, lab, campaign, records, store); the CLI and review sit above it.
"""
