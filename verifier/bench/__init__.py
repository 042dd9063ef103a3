"""`make bench`: the capture engine measured side by side with tcpdump, iperf3 and libvirt in the lab."""
