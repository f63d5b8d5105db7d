"""The HTTP routes by resource: filesystems, instances, the agents' view and reports, the agent wheel index."""
