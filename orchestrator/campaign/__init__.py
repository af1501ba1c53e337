"""The campaign: the file a scientist writes (schema, station section, checks, loading) and the runner lease.

May import: store, records, errors, and `planners`, `instruments`, `simulators` for the types a file names.
"""
