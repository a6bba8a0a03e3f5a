"""Containers: the pool state machine, keep-alive decisions, what a container is, its cgroups."""
