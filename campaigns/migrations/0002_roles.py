from django.contrib.auth.management import create_permissions
from django.db import migrations

# Frozen here: later changes to the roles get their own migration.
ROLE_PERMISSIONS = {
    "Marketing": ["send_rewards"],
    "Manager": ["view_reports", "export_rewards"],
    "Admin": ["manage_campaigns", "send_rewards", "view_reports", "export_rewards"],
}


def make_roles(apps, schema_editor):
    # Permissions are normally made after all migrations have run; the groups need them now.
    # The historical app config has no models_module, which create_permissions checks for.
    app_config = apps.get_app_config("campaigns")
    app_config.models_module = True
    create_permissions(app_config, verbosity=0, apps=apps)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="campaigns", codename__in=codenames)
        )


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLE_PERMISSIONS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(make_roles, remove_roles)]
