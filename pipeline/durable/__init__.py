"""Jobs as durable DBOS workflows, behind `JANT_ENGINE=dbos` (docs/durable-jobs.md).

Nothing here is imported unless that setting asks for it: `dbos` is the optional `durable` extra.
"""
