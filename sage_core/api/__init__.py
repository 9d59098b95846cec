"""The dataflow API: environments, data streams and function classes."""
