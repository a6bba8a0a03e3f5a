"""Where nodes come from: local cgroup slices, Docker hosts, a Kubernetes cluster, simulated VMs."""
