"""Chat frontends: each only translates between one platform and the core."""
