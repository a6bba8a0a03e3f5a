"""Nodes: placement, offline packing and consolidation, autoscaling decisions, the node pool."""
