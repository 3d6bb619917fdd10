"""A simulated Kubernetes cluster on loopback that speaks the real protocols."""
