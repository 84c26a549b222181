from django.urls import path, re_path

from . import embeddings, views

app_name = "gateway"

urlpatterns = [
    path("chat/completions", views.chat_completions, name="chat-completions"),
    path("models", views.models, name="models"),
    path("embeddings", embeddings.embeddings, name="embeddings"),
    path("models/<path:model_id>", views.model_detail, name="model-detail"),
    # Last: every other /v1 path is an OpenAI-shaped 404, never Django's HTML page.
    re_path(r"^(?P<path>.*)$", views.not_found, name="not-found"),
]
