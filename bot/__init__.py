"""The daemon: everything between a chat platform and the model (worker, store, pipeline, server)."""
