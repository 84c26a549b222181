"""The request as `requests` would prepare and send it, without its per-call work.

These re-implement parts of `requests` (`Session.send`, `PreparedRequest.prepare`) that
our sessions do not need; they are pinned to the `requests` version in requirements.txt
and guarded by tests/llm_providers/test_http.py.
"""

import json
from typing import cast

import requests
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity

from ..providers.base import HttpRequestSpec


def send_prepared(session: requests.Session, prepared, timeout) -> requests.Response:
    """`HTTPAdapter.send` on the session's adapter, without `Session.send` around it.

    Measured on the /v1 hot path (bench/README.md): `Session.send` adds its hooks, cookie
    jars (ours refuse every cookie), redirect resolution (we never follow redirects: a
    3xx is reported) and per-call proxy resolution on top of the adapter, ~40 µs a call.
    The proxies are the session's own, resolved once when it was made. Test doubles
    (`responses`) intercept at `HTTPAdapter.send`, so they still see every request.
    """
    adapter = session.get_adapter(prepared.url)
    return adapter.send(
        prepared, stream=True, timeout=timeout, verify=True, cert=None, proxies=session.proxies
    )


# spec.url → its prepared form (None: the URL carries credentials, so take the full path)
_prepared_urls: dict[str, str | None] = {}


def prepare(session: requests.Session, spec: HttpRequestSpec, headers) -> requests.PreparedRequest:
    """The request as `session.request` would prepare it, without its per-call work.

    Measured on the /v1 hot path (bench/README.md): `PreparedRequest.prepare` parses and
    re-quotes the URL twice (once for URL credentials), builds an empty cookie jar and
    a Cookie header from it, on every call, ~60 µs. Our sessions have no cookies, no auth
    and no per-request environment; the URL's preparation depends on the URL alone, so
    it is done once per URL, and the headers are still validated on every call.
    """
    try:
        url = _prepared_urls[spec.url]
    except KeyError:
        url = _prepared_urls[spec.url] = _prepare_url(spec.url)
    if url is None:
        return prepare_fully(session, spec, headers)
    prepared = requests.PreparedRequest()
    prepared.method = spec.method.upper()
    prepared.url = url
    # Our sessions' headers are str (requests allows bytes too).
    merged = cast("CaseInsensitiveDict[str]", CaseInsensitiveDict(session.headers))
    merged.update(headers)
    for header in merged.items():
        check_header_validity(header)
    prepared.headers = merged
    body = None
    if spec.json is not None:
        try:
            body = json.dumps(spec.json, allow_nan=False).encode("utf-8")
        except ValueError as exc:
            raise requests.exceptions.InvalidJSONError(exc, request=prepared) from None
        merged["Content-Length"] = str(len(body))
        if "content-type" not in merged:
            merged["Content-Type"] = "application/json"
    elif prepared.method not in ("GET", "HEAD") and "content-length" not in merged:
        merged["Content-Length"] = "0"
    prepared.body = body
    prepared.hooks = {"response": []}
    return prepared


def _prepare_url(url: str) -> str | None:
    """`url` as requests prepares it, or None when preparing adds credentials from it."""
    if len(_prepared_urls) >= 10_000:
        _prepared_urls.clear()  # bounded: tenants' base URLs are few
    probe = requests.PreparedRequest()
    probe.prepare(method="GET", url=url)  # raises InvalidURL & co. as a full prepare would
    if "Authorization" in probe.headers:
        return None
    return probe.url


def prepare_fully(session, spec: HttpRequestSpec, headers) -> requests.PreparedRequest:
    prepared = requests.PreparedRequest()
    prepared.prepare(
        method=spec.method,
        url=spec.url,
        headers={**session.headers, **headers},
        json=spec.json,
        hooks=session.hooks,
    )
    return prepared
