"""Alembic's scripts: ``env.py`` and the numbered revisions in ``versions/`` (``0001_initial``, …).

Applied at start by ``gptrelay.db.schema.migrate(url)``. A new revision is a
new file ``versions/NNNN_what.py`` with ``revision = "NNNN"`` and
``down_revision`` the one before.
"""
