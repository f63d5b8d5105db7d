"""OpenStack's side of the client: a keystoneauth transport and the `openstack filesystem` plugin (extra `osc`)."""
