"""The store: every stage's results, one database (SQLite by default, PostgreSQL by URL).

Importing the package registers every table module on the shared ``Base``, so the single
``create_all`` in ``Store`` (or the bandit tester) creates the whole schema whichever opens it first.
"""

from genart.store import bandit_tables, review_tables  # noqa: F401  (register the tables)
from genart.store import batch_tables  # noqa: F401  (genart batch: the job ledger)
from genart.store import embedding_tables  # noqa: F401  (register the embedding cache table)
