"""Whispr messaging core: domain rules, use cases, storage, ports and adapters.

Every entry point (REST functions, the local gateway, the relay, the gRPC shim, task targets)
imports this package and calls the same use cases.
"""
