"""The schema revision this aipilot needs (the newest file in alembic/versions).

Kept in step with alembic/versions by a test, so checking the schema imports neither
alembic nor SQLAlchemy.
"""

HEAD_REVISION = "0006_usage_and_model_facts"
