"""Daily's REST API under ``/v1``, served by the sandbox with Daily's bodies and errors, and
the sandbox's own control endpoints under ``/v1/sandbox/`` (faults, simulated phone calls,
inspection). ``routes.setup_routes`` lists every endpoint and the module that answers it.
"""
