"""The `peirce` command. The top room: it may import every other room; nothing imports it.

    app          the typer app, `--version`, and `main` (one line and exit status 2 for any bad input)
    options      the arguments and options several commands share (`--db`, CAMPAIGN, `--engine`, `--json`)
    database     how a command opens its database: to read, to change a campaign, or to create
    output       consoles for standard output and error (piped output: whole lines, no colour)
    campaigns    init, validate, schema, run, resume, stop, status, list, export, upgrade
    ledger       hypotheses, hypothesize, retire, knowledge export/import
    review       replay, report
    archive      archive export/import
    instruments  instruments, twin

Modules below this room are imported inside the commands that need them (each says so), so that `peirce --help`,
`init`, `validate` and `hypothesize` start without torch, Prefect or pandas.
"""
