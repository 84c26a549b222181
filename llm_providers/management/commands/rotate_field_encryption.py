"""Re-encrypt every encrypted column under the newest FIELD_ENCRYPTION_KEY."""

from cryptography.fernet import InvalidToken
from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from llm_providers.configs.encryption import FailClosedEncryptedCharField, rotate_token


def encrypted_columns():
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, FailClosedEncryptedCharField):
                yield model, field


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted value with the first (newest) key of "
        "FIELD_ENCRYPTION_KEY. Values no configured key can open are reported, not changed."
    )

    def handle(self, *args, **options):
        rotated = failed = 0
        for model, field in encrypted_columns():
            table = connection.ops.quote_name(model._meta.db_table)
            column = connection.ops.quote_name(field.column)
            pk_column = connection.ops.quote_name(model._meta.pk.column)
            # Raw SQL on purpose: the ORM would decrypt on read and encrypt on write.
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT {pk_column}, {column} FROM {table} "  # noqa: S608
                    f"WHERE {column} IS NOT NULL AND {column} <> ''"
                )
                for pk, token in cursor.fetchall():
                    try:
                        new_token = rotate_token(token)
                    except InvalidToken:
                        failed += 1
                        self.stderr.write(
                            f"{model._meta.label} {pk}: {field.name} cannot be decrypted "
                            "with any configured key; left unchanged."
                        )
                        continue
                    cursor.execute(
                        f"UPDATE {table} SET {column} = %s WHERE {pk_column} = %s",  # noqa: S608
                        [new_token, pk],
                    )
                    rotated += 1
        self.stdout.write(f"Re-encrypted {rotated} value(s) under the newest key.")
        if failed:
            raise CommandError(f"{failed} value(s) could not be decrypted; see above.")
