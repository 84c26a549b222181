from django.apps import AppConfig


class BuildLoopConfig(AppConfig):
    name = "build_loop"
    verbose_name = "Build loop"
