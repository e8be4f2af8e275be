"""The names of the three roles. Migration 0002_roles makes the groups and their permissions."""

MARKETING = "Marketing"
MANAGER = "Manager"
ADMIN = "Admin"
