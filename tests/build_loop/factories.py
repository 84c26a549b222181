import factory
from factory.django import DjangoModelFactory

from build_loop.models import Build, BuildStep
from tests.factories import TenantFactory


class BuildFactory(DjangoModelFactory):
    class Meta:
        model = Build

    tenant = factory.SubFactory(TenantFactory)
    prompt = "A web shop for second-hand bicycles."
    max_iterations = 3


class BuildStepFactory(DjangoModelFactory):
    class Meta:
        model = BuildStep

    build = factory.SubFactory(BuildFactory)
    position = factory.Sequence(lambda n: n + 1)
    name = "blueprint"
    iteration = 1
