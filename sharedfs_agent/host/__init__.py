"""The only modules that touch the host: processes, probes, systemd."""
