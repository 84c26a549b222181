"""The task worker: django-tasks-db's `db_worker`, run with several threads and kept alive
through a locked or briefly unreachable database."""
