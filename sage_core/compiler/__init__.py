"""Logical graph -> validated, physical execution graph."""
