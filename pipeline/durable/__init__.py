"""Jobs as durable DBOS workflows, behind `JANT_ENGINE=dbos` (docs/durable-jobs.md).

`dbos` (the optional `durable` extra) is imported only when that setting asks for it: the front ends
import `queued_orchestrator` always, and it reaches DBOS only when a `--no-worker` process opens its queue.
"""
