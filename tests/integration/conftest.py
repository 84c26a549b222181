"""A whole Switchyard per test: its own database, the web server, db_worker and a fake provider.

Nothing here touches the pytest-django test database: the processes share only their own
database (see tests/support/processes.py), exactly as a deployment's processes do.
"""

import pytest

from tests.support.processes import subprocess_database
from tests.support.stack import Stack
from tests.support.upstream import FakeUpstream


@pytest.fixture
def upstream():
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture
def stack(tmp_path, upstream):
    with subprocess_database(tmp_path) as database_url:
        deployment = Stack(tmp_path, database_url, upstream)
        deployment.migrate()
        try:
            yield deployment
        finally:
            deployment.stop()
