"""Install, configure and run the components a node needs (containerd today).

Used by the agent's host set-up, by `steer up` for the local cluster (cli may import
this package) and by the tests; nothing here assumes a test machine.
"""
