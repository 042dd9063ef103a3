"""Capture stage: live sniffing per interface, pcap writing and reading, pure counting."""
