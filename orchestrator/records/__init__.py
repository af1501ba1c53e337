"""What a decision records: provenance (hashes, seeds, versions) and typed record models (decisions, event
details, the archive manifest), all on one strict base (`records.base.StrictModel`).

May import: errors and store (its canonical JSON), so every room above can describe and read its records.
"""
