"""sharedfs-agent: keeps this instance's shared-filesystem mounts and fstab equal to the control plane's view."""

__version__ = "0.1.0"
