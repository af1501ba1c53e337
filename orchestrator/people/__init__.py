"""People in the loop: what a campaign waits for a person to do, and the acts by which people answer.

- `requests`: a request waiting for a person (approve an experiment, enter its results, do a station step),
  opened in the transaction that puts the work in front of people and answered once, by a named person;
- `waiting`: what a campaign waits for, in words a person reads (status, `peirce pending`, notifications).

Every act names who did it and why, is an Event, and is the same record whether it came from the CLI, the Python
API or Prefect's UI. Waiting never auto-approves and holds no process.

May import the rooms below it (ledger, lab, campaign, records, store); the cycle, review, the CLI and the Python
API sit above it.
"""
