"""What a decision records: provenance (hashes, seeds, versions) and typed record models.

May import: errors and nothing else of the orchestrator, so every room can describe its records.
"""
