"""`make bench`: both capture engines against tcpdump and iperf3 in the bench's own namespaces (lab cases: --lab)."""
