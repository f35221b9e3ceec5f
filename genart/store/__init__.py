"""The store: every stage's results, one database (SQLite by default, PostgreSQL by URL).

Importing the package registers every table module on the shared ``Base``, so the single
``create_all`` in ``Store`` (or the bandit tester) creates the whole schema whichever opens it first.
"""

from genart.store import bandit_tables, review_tables  # noqa: F401  (register the tables)
