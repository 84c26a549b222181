from django.urls import path, re_path

from . import embeddings, messages, views

app_name = "gateway"

urlpatterns = [
    path("chat/completions", views.chat_completions, name="chat-completions"),
    path("models", views.models, name="models"),
    path("embeddings", embeddings.embeddings, name="embeddings"),
    path("messages", messages.messages, name="messages"),
    path("messages/count_tokens", messages.count_tokens, name="messages-count-tokens"),
    path("models/<path:model_id>", views.model_detail, name="model-detail"),
    # Last: every other /v1 path is an OpenAI-shaped 404, never Django's HTML page.
    re_path(r"^(?P<path>.*)$", views.not_found, name="not-found"),
]
