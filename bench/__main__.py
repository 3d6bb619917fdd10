"""`python -m bench`: run every benchmark in turn and print their figures."""

from bench import kubectl_get_nodes, metrics_reduce

if __name__ == "__main__":
    metrics_reduce.main()
    kubectl_get_nodes.main()
