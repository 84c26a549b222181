"""docs/python-api.md: every Python example runs, as written, against a stand-in provider.

The examples assume a tenant `acme` and an OpenAI-compatible server on 127.0.0.1:8080;
here the server is tests/support/upstream.py's fake on a free port (the only change made
to the examples' text).
"""

import re
from pathlib import Path

import pytest

from llm_providers.models import UsageLog
from tests.factories import TenantFactory
from tests.support.upstream import FakeUpstream

DOC = Path(__file__).resolve().parents[2] / "docs" / "python-api.md"


def examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)


@pytest.fixture
def upstream():
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


def test_the_page_has_examples():
    assert len(examples()) >= 4


@pytest.mark.django_db(transaction=True)
def test_every_example_runs_in_order(upstream, capsys):
    TenantFactory(id="acme")
    port = upstream.base_url.split(":")[-1].split("/")[0]
    for number, source in enumerate(examples(), start=1):
        code = compile(source.replace("127.0.0.1:8080", f"127.0.0.1:{port}"), f"ex{number}", "exec")
        exec(code, {})  # noqa: S102 - the page's own examples
    printed = capsys.readouterr().out
    assert "OK" in printed  # the stand-in's answer reached the examples
    assert UsageLog.objects.filter(tenant_id="acme", endpoint="completion", success=True).exists()
    assert UsageLog.objects.filter(tenant_id="acme", endpoint="chat", success=True).exists()
