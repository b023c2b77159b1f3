"""The shared test kit: a fake clock, free ports, polling, in-memory streams and peers."""
