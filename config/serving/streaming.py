"""Relay sync streaming responses chunk by chunk under ASGI.

Django's ASGI handler serves a `StreamingHttpResponse` whose content is a sync iterator by
running the whole iterator to a list first (with a warning), so an SSE stream from `/v1`
would reach the client only once it is over, and a static file would be read whole into
memory. This middleware gives such a response an async iterator that pulls one chunk at a
time from the sync iterator on the request's own thread (thread-sensitive: the iterator's
database connection and the usage row it writes at the end live there). The iterator's
`close()` stays registered with the response, so a client that leaves still closes it
(Django calls `response.close()` after a disconnect), exactly as under WSGI.
"""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.core.handlers.asgi import ASGIRequest

_END = object()


def _next_chunk(iterator):
    return next(iterator, _END)


async def _relay(iterable):
    iterator = iter(iterable)
    pull = sync_to_async(_next_chunk, thread_sensitive=True)
    while True:
        chunk = await pull(iterator)
        if chunk is _END:
            return
        yield chunk


class SyncStreamingRelayMiddleware:
    """Acts only on requests served over ASGI; under WSGI responses pass untouched.

    Sync or async, as Django runs the chain (every middleware is async-capable, so under
    ASGI it runs on the loop and async views hold no thread); the async iterator it sets
    is consumed later by the ASGI handler on the loop.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self._async:
            return self._acall(request)
        return self._relayed(request, self.get_response(request))

    async def _acall(self, request):
        return self._relayed(request, await self.get_response(request))

    @staticmethod
    def _relayed(request, response):
        if isinstance(request, ASGIRequest) and response.streaming and not response.is_async:
            # Setting streaming_content keeps the original iterator's close() among the
            # response's closers (it was registered when the response was built).
            response.streaming_content = _relay(response.streaming_content)
        return response
