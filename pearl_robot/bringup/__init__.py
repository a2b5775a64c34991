"""Bring-up of a servo bus: ``doctor`` diagnoses it (baud/id scan against the hardware YAML, adapter
latency, round trip, Return Delay Time, hardware errors, a sync-read stress test) and fixes what is
safe; ``setup_servo`` gives a new servo its id and baud rate, one servo at a time."""
