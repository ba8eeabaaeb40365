"""The Kubernetes adapter: one module per concern (client, flux, nodes, longhorn, cnpg, etcd).

Importing this package is cheap: the ``kubernetes`` client is imported on first use.
"""
