"""Usage stats over windows at the edge of the calendar answer, never 500 (issue 15.11)."""

import pytest

STATS = "/api/llm/usage/stats"


def test_stats_ending_at_the_first_instant_are_a_400(tenant_client):
    response = tenant_client.get(STATS, {"to": "0001-01-01T00:00:00Z"})  # an empty window

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "validation_error"


# A date `to` includes its day, so to=0001-01-01 is the first day (this was an
# OverflowError: the default start was computed as `to` minus 30 days).
@pytest.mark.parametrize("to", ["0001-01-01", "0001-01-15", "0001-01-30T12:00:00Z"])
def test_stats_ending_in_the_first_month_start_at_the_first_date(tenant_client, to):
    response = tenant_client.get(STATS, {"to": to, "group_by": "day"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["from"].startswith("0001-01-01T00:00:00")
    assert body["totals"]["requests"] == 0
