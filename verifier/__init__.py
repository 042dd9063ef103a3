"""verify-path: prove which network link a libvirt live migration really used."""

__version__ = "0.1.0"
