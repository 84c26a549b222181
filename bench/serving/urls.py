"""The project's URLs plus GET /bench/hello, an async view that touches nothing."""

from django.http import HttpResponse
from django.urls import path

from config.urls import urlpatterns as project_urlpatterns


async def hello(request):
    return HttpResponse(b"hello", content_type="text/plain")


urlpatterns = [path("bench/hello", hello), *project_urlpatterns]
