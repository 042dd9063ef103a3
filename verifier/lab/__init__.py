"""A two-node KVM/libvirt cluster in network namespaces, for demos and real end-to-end tests."""
