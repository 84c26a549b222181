"""Helpers shared by tests that run real processes (the web server, db_worker, manage.py)."""
