from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.models import ApiKey, Tenant


class Command(BaseCommand):
    help = "Create an API key bound to a tenant's subtree and print it (shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="the tenant's slug")
        parser.add_argument(
            "--scope",
            action="append",
            choices=ApiKey.Scope.values,
            required=True,
            help="repeat for several scopes",
        )
        parser.add_argument("--name", default="", help="a label for the key")

    def handle(self, *args, tenant, scope, name, **options):
        target = Tenant.objects.filter(slug=tenant).first()
        if target is None:
            raise CommandError(f"No tenant with slug {tenant!r}.")
        api_key = ApiKey(
            name=name or f"{target.slug} {'+'.join(scope)}",
            tenant=target,
            scopes=sorted(set(scope)),
        )
        try:
            api_key.full_clean(exclude=["id", "prefix", "hashed_key"])
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        key = ApiKey.objects.assign_key(api_key)
        api_key.save()
        self.stdout.write(key)
        self.stderr.write(
            f"Key for {target.slug} with scopes {', '.join(api_key.scopes)}. "
            "Store it now; it cannot be shown again."
        )
