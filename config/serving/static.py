"""WhiteNoise, async-capable: static files as before, every other request left async.

WhiteNoise's middleware is sync-only, and one sync-only middleware makes Django run the
whole chain in a thread under ASGI, with an async view holding that thread for its whole
length. Here a request for a file WhiteNoise knows is served exactly as WhiteNoise serves
it (its sync code, on the request's pooled thread; the file's body is relayed by
config.serving.streaming); any other request goes on without a thread.
"""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from whitenoise.middleware import WhiteNoiseMiddleware


class AsyncCapableWhiteNoiseMiddleware(WhiteNoiseMiddleware):
    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None, settings=None):
        if settings is None:
            super().__init__(get_response)
        else:
            super().__init__(get_response, settings=settings)
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self._async:
            return self._acall(request)
        return super().__call__(request)

    async def _acall(self, request):
        if self.autorefresh:  # DEBUG: looked up on disk, on a thread; only where it may be
            static_file = None
            if self._may_be_a_file(request.path_info):
                static_file = await sync_to_async(self.find_file)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve)(static_file, request)
        return await self.get_response(request)

    def _may_be_a_file(self, url: str) -> bool:
        """Whether `find_file` could find anything at `url` (the prefixes it searches)."""
        if self.use_finders and url.startswith(self.static_prefix):
            return True
        return any(url.startswith(prefix) for _root, prefix in self.directories)
