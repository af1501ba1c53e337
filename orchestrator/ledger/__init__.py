"""The hypothesis ledger in the database: its rows, the stage helpers that write them, a person's edits, and
knowledge carried from one campaign to the next.

May import: lab (a finite lab's candidates), campaign, records, store, errors, and `planners`.
"""
