"""The Python API: a scientist drives a campaign from a notebook or a script, asking for experiments and telling
their results (`import peirce`; `peirce.Campaign`). The import name `peirce` lives in `api/src/peirce`, a source
root of its own (the top level of the repository is fixed), and only re-exports what is here.

- `campaign`: `Campaign` — create or open a campaign, `ask` for the experiments to run, `tell` their results, and
  read where it stands (`status`, `best`, `hypotheses`, `experiments`);
- `acting`: how an act holds the campaign's runner lease (so a notebook and `peirce resume` never act at once),
  and the lab a notebook is (the caller runs each experiment handed out);
- `entries`: a table of results (a DataFrame or records) read into the entries `people.results` checks and writes;
- `frames`: the tables `ask` and `best` answer with.

Every record is the one the CLI and the loop write: the same stage functions plan, the same function enters results,
each result names the person who told it. So `peirce replay`, `peirce report` and `peirce resume` work on a campaign
driven from Python, and the other way round.

The top room beside the CLI: it may import every room below (review, cycle, people, ledger, lab, campaign, records,
store, errors); nothing imports it, and it and the CLI import nothing of each other.
"""
