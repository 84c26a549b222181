from django.urls import path

from . import embeddings, views

app_name = "gateway"

urlpatterns = [
    path("chat/completions", views.chat_completions, name="chat-completions"),
    path("models", views.models, name="models"),
    path("embeddings", embeddings.embeddings, name="embeddings"),
]
