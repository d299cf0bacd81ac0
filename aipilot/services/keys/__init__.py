"""API keys: storing them sealed under the master key (credentials, sealing), setting, testing
and deleting them (keys), and the guard that refuses a retired master key (rotation_guard).
"""
