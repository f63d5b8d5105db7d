"""The only modules that touch the host: mount.py (Host), processes, probes, systemd; fake.py is its test double."""
