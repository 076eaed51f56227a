"""The HTTP API (DESIGN section 4): FastAPI app built by `api.app.create_app`."""
