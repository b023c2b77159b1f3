"""Neutron v2.0 subset, mounted under ``/networking`` (DevStack layout; catalog type `network`)."""
