"""QEMU/KVM compute driver over libvirt (libvirt-python is an optional dependency)."""
