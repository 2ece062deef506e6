"""Subcommands of `ftassist`, one module per station (keep imports light: heavy ones go inside functions)."""
