"""Switchyard's URL surfaces, one include() each (README, "Use it in your Django project"):

    path("api/", include("llm_providers.urls.api")),      # provider configs, test, usage
    path("api/build/", include("build_loop.urls")),       # the build loop's API
    path("v1/", include("llm_providers.gateway.urls")),   # the OpenAI-compatible gateway
    path("", include("llm_providers.urls.health")),       # GET /healthz

`include("llm_providers.urls")` is the REST API too, as before.
"""

from .api import urlpatterns  # noqa: F401
