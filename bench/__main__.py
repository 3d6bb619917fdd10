"""`python -m bench`: run every benchmark in turn."""

from bench import kubectl_get_nodes

if __name__ == "__main__":
    kubectl_get_nodes.main()
