"""sharedfs-api: the os-filesystem control plane (filesystems, scopes, instances, drivers, the agents' view)."""

__version__ = "0.1.0"
