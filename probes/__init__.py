"""Facts from the world: Kubernetes API, SSH, kubelet endpoints, metrics, certificates."""
