"""Helpers shared by tests that run real processes (gunicorn, db_worker, manage.py)."""
