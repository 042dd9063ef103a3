"""In-kernel counting engine: an eBPF program on tcx hooks counts the watched TCP flows per
interface, direction and second, so no frame is copied to user space (engine.py)."""
