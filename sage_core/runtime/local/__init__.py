"""The local runtime: one thread per physical task, bounded queues."""
