"""Numbered schema migrations: `NNN_what_it_does.sql`, numbered 001, 002, … without gaps.

`storage.database.migrate` runs every pending file in one transaction, so a file must not contain
BEGIN, COMMIT or VACUUM. Foreign keys are off while it runs and checked before the commit: to change
a column, rebuild the table (create the new one, copy, drop the old, rename) as SQLite documents.
"""
