"""Reading a campaign back: tables, plots, the report, replay, export and archives. Nothing here changes a
running campaign (archive import writes a new one).

May import: cycle (replay re-derives a decision with the stages' pure parts) and every room below it.
"""
